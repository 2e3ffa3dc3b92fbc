/*
 * pride_reduce_scatter: for small vectors one everyone-to-everyone round
 * (alltoall.c), after which each rank reduces the P contributions to its block in
 * rank order; for large ones the pipelined ring (ring.c), P-1 steps with every byte
 * crossing one link once.
 *
 * In place (sendbuf == recvbuf, or any overlap) the result is built aside and copied
 * into recvbuf at the end, since the input is read until the last step.
 */
#include <stdlib.h>
#include <string.h>

#include "algos.h"
#include "reduce_kernels.h"

/* Everyone sends each rank its block; that rank reduces the P blocks in rank order. */
static int rs_direct(struct coll *c, const char *in, char *own, size_t blk, size_t count,
                     pride_dtype_t dt, pride_op_t op)
{
    int P = c->nranks, r = c->rank;
    size_t tcap;
    char *tmp = coll_scratch(c, (size_t)(P - 1) * blk, &tcap);
    if (!tmp)
        return pride_error(c->ctx, PRIDE_ERR_NOMEM, "reduce_scatter: out of memory");
    int st = algo_direct(c, in, 1, tmp, 0, blk);
    if (st == PRIDE_OK) {
        /* rank j's contribution came from distance d = r - j, into slot d-1 */
        const char *mine = in + (size_t)r * blk;
        for (int j = 0; j < P; j++) {
            const char *x = j == r ? mine : tmp + (size_t)((r - j + P) % P - 1) * blk;
            if (j == 0)
                memcpy(own, x, blk);
            else
                reduce_apply(own, x, count, dt, op);
        }
        if (op == PRIDE_AVG)
            pride_avg_finish(own, count, dt, P);
    }
    coll_scratch_put(c, tmp, tcap);
    return st;
}

int pride_reduce_scatter(pride_context_t *ctx, const void *sendbuf, void *recvbuf,
                         size_t recvcount, pride_dtype_t dtype, pride_op_t op)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    const char *fn = "pride_reduce_scatter";
    size_t bytes;
    int st = args_check_type(ctx, fn, dtype, 1, op, recvcount, (size_t)ctx->nranks, &bytes);
    size_t blk = bytes / (size_t)ctx->nranks;
    if (st == PRIDE_OK)
        st = args_check_buf(ctx, fn, "sendbuf", sendbuf, bytes);
    if (st == PRIDE_OK)
        st = args_check_buf(ctx, fn, "recvbuf", recvbuf, blk);
    if (st != PRIDE_OK)
        return st;
    struct coll c;
    st = coll_begin(&c, ctx, PRIDE_COLL_REDUCE_SCATTER, dtype, op, recvcount, -1);
    if (st != PRIDE_OK)
        return st;
    if (c.nranks == 1) {
        if (blk > 0 && sendbuf != recvbuf)
            memmove(recvbuf, sendbuf, blk);
        return coll_end(&c, PRIDE_OK);
    }
    if (blk == 0)
        return coll_end(&c, algo_agree(&c));
    char *own = recvbuf, *aside = NULL;
    if (algo_overlap(sendbuf, bytes, recvbuf, blk)) {
        own = aside = malloc(blk);
        if (!aside)
            return coll_end(&c, pride_error(ctx, PRIDE_ERR_NOMEM,
                                            "%s: no memory for %zu bytes", fn, blk));
    }
    if (bytes <= ALGO_REDUCE_SCATTER_DIRECT_MAX_BYTES)
        st = rs_direct(&c, sendbuf, own, blk, recvcount, dtype, op);
    else
        st = ring_reduce_scatter(&c, sendbuf, own, recvcount * (size_t)c.nranks, dtype, op);
    if (st == PRIDE_OK && aside)
        memcpy(recvbuf, aside, blk);
    free(aside);
    return coll_end(&c, st);
}
