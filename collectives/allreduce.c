/*
 * pride_allreduce: check the arguments, pick the algorithm, run it.
 *
 * Three algorithms, all bit-identical on every rank: tree (recursive doubling, tree.c)
 * for small vectors where latency rules, rhd (recursive halving-doubling, rhd.c) for
 * medium ones, ring (ring.c) for large ones where bandwidth rules. The crossovers are
 * the ALGO_ALLREDUCE_* constants in algos.h; $PRIDE_ALLREDUCE_ALGO (ctx->allreduce_algo)
 * forces one. The choice travels in every frame's meta, so ranks that pick
 * differently (different environments) fail with PRIDE_ERR_MISMATCH instead of
 * waiting for messages that will never come.
 */
#include <string.h>

#include "algos.h"

static int allreduce_pick(const pride_context_t *ctx, size_t bytes)
{
    int a = ctx->allreduce_algo;
    if (a == PRIDE_ALGO_RING || a == PRIDE_ALGO_TREE || a == PRIDE_ALGO_RHD)
        return a;
    size_t P = (size_t)ctx->nranks;
    if (bytes <= (P <= 3 ? ALGO_ALLREDUCE_TREE_MAX_BYTES_FEW : ALGO_ALLREDUCE_TREE_MAX_BYTES))
        return PRIDE_ALGO_TREE;
    if (P >= 4 && bytes <= ALGO_ALLREDUCE_RHD_MAX_PER_RANK * P)
        return PRIDE_ALGO_RHD;
    return PRIDE_ALGO_RING;
}

int pride_allreduce(pride_context_t *ctx, const void *sendbuf, void *recvbuf, size_t count,
                    pride_dtype_t dtype, pride_op_t op)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    const char *fn = "pride_allreduce";
    size_t bytes;
    int st = args_check_type(ctx, fn, dtype, 1, op, count, 1, &bytes);
    if (st == PRIDE_OK)
        st = args_check_buf(ctx, fn, "sendbuf", sendbuf, bytes);
    if (st == PRIDE_OK)
        st = args_check_buf(ctx, fn, "recvbuf", recvbuf, bytes);
    if (st != PRIDE_OK)
        return st;
    int algo = allreduce_pick(ctx, bytes);
    struct coll c;
    st = coll_begin(&c, ctx, PRIDE_COLL_ALLREDUCE, dtype, op, count, -1);
    if (st != PRIDE_OK)
        return st;
    c.meta.algo = (uint8_t)algo;
    if (c.nranks == 1) {
        if (sendbuf != recvbuf && bytes > 0)
            memmove(recvbuf, sendbuf, bytes);
        return coll_end(&c, PRIDE_OK);
    }
    if (count == 0)
        return coll_end(&c, algo_agree(&c));
    if (algo == PRIDE_ALGO_RING)
        return coll_end(&c, ring_allreduce(&c, sendbuf, recvbuf, count, dtype, op));
    /* rhd and tree do not start with a message to the right neighbour: send the check
       (but for the tree on 2 ranks: one frame per call instead of two) */
    struct pride_xfer check[2];
    int checked = algo == PRIDE_ALGO_TREE && ALGO_TREE_IS_CHECK(c.nranks);
    if (!checked)
        st = algo_check_post(&c, check);
    if (st == PRIDE_OK && algo == PRIDE_ALGO_RHD)
        st = rhd_allreduce(&c, sendbuf, recvbuf, count, dtype, op);
    else if (st == PRIDE_OK)
        st = tree_allreduce(&c, sendbuf, recvbuf, count, dtype, op);
    if (st == PRIDE_OK && !checked) {
        struct pride_xfer *w[2] = {&check[0], &check[1]};
        st = coll_wait(&c, w, 2);
    }
    return coll_end(&c, st);
}
