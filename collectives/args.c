/*
 * Argument checks shared by the collectives' entry points. They run before a
 * collective takes its sequence number, so a call with bad arguments fails on this
 * rank alone with PRIDE_ERR_INVALID and a sentence naming the call and the argument,
 * and leaves the context usable.
 */
#include <stdint.h>

#include "algos.h"
#include "reduce_kernels.h"

int args_check_type(pride_context_t *ctx, const char *fn, pride_dtype_t dtype, int check_op,
                    pride_op_t op, size_t count, size_t mult, size_t *bytes)
{
    size_t es = pride_dtype_size(dtype);
    if (es == 0)
        return pride_error(ctx, PRIDE_ERR_INVALID,
                           "%s: dtype %d is not a pride_dtype_t (PRIDE_INT8..PRIDE_FLOAT64)", fn,
                           (int)dtype);
    if (check_op && pride_reduce_check(dtype, op) != PRIDE_OK) {
        if ((unsigned)op <= PRIDE_AVG)
            return pride_error(ctx, PRIDE_ERR_INVALID,
                               "%s: op PRIDE_AVG needs a floating dtype (float16, bfloat16, "
                               "float32 or float64), got dtype %d",
                               fn, (int)dtype);
        return pride_error(ctx, PRIDE_ERR_INVALID,
                           "%s: op %d is not a pride_op_t (PRIDE_SUM..PRIDE_AVG)", fn, (int)op);
    }
    if (count > SIZE_MAX / es / mult)
        return pride_error(ctx, PRIDE_ERR_INVALID,
                           "%s: %zu elements of %zu bytes (times %zu) overflow the address space",
                           fn, count, es, mult);
    *bytes = count * es * mult;
    return PRIDE_OK;
}

int args_check_buf(pride_context_t *ctx, const char *fn, const char *name, const void *buf,
                   size_t bytes)
{
    if (!buf && bytes > 0)
        return pride_error(ctx, PRIDE_ERR_INVALID, "%s: %s is NULL but %zu bytes are needed", fn,
                           name, bytes);
    return PRIDE_OK;
}

int args_check_root(pride_context_t *ctx, const char *fn, int root)
{
    if (root < 0 || root >= ctx->nranks)
        return pride_error(ctx, PRIDE_ERR_INVALID, "%s: root %d is not a rank (0..%d)", fn, root,
                           ctx->nranks - 1);
    return PRIDE_OK;
}
