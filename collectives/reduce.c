/*
 * pride_reduce: a binomial tree for small vectors (tree.c), a pipelined chain for
 * large ones.
 *
 * The chain runs root-1 -> root-2 -> ... -> root+1 -> root (rank order reversed, so
 * every rank combines (its own data) op (everything after it)): rank v receives chunk
 * k of the partial result of ranks v+1.. into a small slot, reduces it with its own
 * chunk straight into a send slot (or, on the root, into the output) and passes it
 * on, while the next chunks are on the wire. Each rank moves S bytes once; only the
 * root needs an output buffer, the others a window of chunk slots.
 *
 * The ranks agree first (algo_agree, a 0-byte dissemination), so a rank that
 * disagrees about the root cannot leave the others waiting, and every rank fails.
 */
#include <stdlib.h>
#include <string.h>

#include "algos.h"
#include "reduce_kernels.h"

static int reduce_chain(struct coll *c, const void *in, void *out, size_t count,
                        pride_dtype_t dt, pride_op_t op, int root)
{
    int P = c->nranks, r = c->rank, vr = (r - root + P) % P;
    size_t es = pride_dtype_size(dt), ce = algo_chunk_elems(count * es, es);
    size_t C = algo_nchunks(count, ce), W = C < ALGO_WINDOW ? C : ALGO_WINDOW;
    int from = vr < P - 1 ? (r + 1) % P : -1, to = vr > 0 ? (r + P - 1) % P : -1;
    /* W receive slots, then W send slots (not on the root, which reduces into out) */
    size_t scap = 0;
    char *slots = from >= 0 ? coll_scratch(c, 2 * W * ce * es, &scap) : NULL;
    struct pride_xfer rx[ALGO_WINDOW], sx[ALGO_WINDOW];
    struct pride_xfer *w[ALGO_WINDOW];
    int st = PRIDE_OK;
    if (from >= 0 && !slots)
        return pride_error(c->ctx, PRIDE_ERR_NOMEM, "reduce of %zu elements: out of memory",
                           count);
    memset(sx, 0, sizeof sx);
    for (size_t k = 0; from >= 0 && k < W && st == PRIDE_OK; k++) {
        size_t n = count - k * ce < ce ? count - k * ce : ce;
        st = coll_irecv(c, &rx[k], from, ALGO_TAG(1, k), slots + k * ce * es, n * es);
    }
    for (size_t k = 0; k < C && st == PRIDE_OK; k++) {
        size_t n = count - k * ce < ce ? count - k * ce : ce, s = k % W;
        const char *mine = (const char *)in + k * ce * es;
        const char *send = mine;
        struct pride_xfer *x = &sx[s];
        if (to >= 0 && k >= W) /* send slot and xfer are free once send k-W has left */
            st = coll_wait(c, &x, 1);
        if (st == PRIDE_OK && from >= 0) {
            x = &rx[s];
            st = coll_wait(c, &x, 1);
            if (st != PRIDE_OK)
                break;
            char *dst = to < 0 ? (char *)out + k * ce * es : slots + (W + s) * ce * es;
            reduce_apply3(dst, mine, slots + s * ce * es, n, dt, op);
            if (to < 0 && op == PRIDE_AVG)
                pride_avg_finish(dst, n, dt, P);
            send = dst;
            if (k + W < C) {
                size_t n2 = count - (k + W) * ce < ce ? count - (k + W) * ce : ce;
                st = coll_irecv(c, &rx[s], from, ALGO_TAG(1, k + W), slots + s * ce * es,
                                n2 * es);
            }
        }
        if (st == PRIDE_OK && to >= 0)
            st = coll_isend(c, &sx[s], to, ALGO_TAG(1, k), send, n * es);
    }
    if (st == PRIDE_OK && to >= 0) {
        for (size_t s = 0; s < W; s++)
            w[s] = &sx[s];
        st = coll_wait(c, w, (int)W);
    }
    st = algo_fail(c, st);
    coll_scratch_put(c, slots, scap);
    return st;
}

int pride_reduce(pride_context_t *ctx, const void *sendbuf, void *recvbuf, size_t count,
                 pride_dtype_t dtype, pride_op_t op, int root)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    const char *fn = "pride_reduce";
    size_t bytes;
    int st = args_check_type(ctx, fn, dtype, 1, op, count, 1, &bytes);
    if (st == PRIDE_OK)
        st = args_check_root(ctx, fn, root);
    if (st == PRIDE_OK)
        st = args_check_buf(ctx, fn, "sendbuf", sendbuf, bytes);
    if (st == PRIDE_OK && ctx->rank == root)
        st = args_check_buf(ctx, fn, "recvbuf (on the root)", recvbuf, bytes);
    if (st != PRIDE_OK)
        return st;
    struct coll c;
    st = coll_begin(&c, ctx, PRIDE_COLL_REDUCE, dtype, op, count, root);
    if (st != PRIDE_OK)
        return st;
    if (c.nranks == 1) {
        if (sendbuf != recvbuf && bytes > 0)
            memcpy(recvbuf, sendbuf, bytes);
        return coll_end(&c, PRIDE_OK);
    }
    st = algo_agree(&c);
    if (st == PRIDE_OK && count > 0) {
        if (bytes <= ALGO_REDUCE_TREE_MAX_BYTES)
            st = tree_reduce(&c, sendbuf, recvbuf, count, dtype, op, root);
        else
            st = reduce_chain(&c, sendbuf, recvbuf, count, dtype, op, root);
    }
    return coll_end(&c, st);
}
