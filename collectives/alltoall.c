/*
 * pride_alltoall, and the one-round everyone-to-everyone exchange it is made of
 * (allgather and reduce-scatter use it for small vectors).
 *
 * Every rank posts all its P-1 receives, then all its P-1 sends, in the order
 * r+1, r+2, ...: one round of latency, each byte moved once, and the TCP streams of
 * all pairs busy at the same time. In place, the input is copied aside first, since
 * the blocks that arrive overwrite blocks still to be sent.
 */
#include <stdlib.h>
#include <string.h>

#include "algos.h"

int algo_direct(struct coll *c, const void *sbuf, int send_by_rank, void *rbuf, int recv_by_rank,
                size_t len)
{
    int P = c->nranks, r = c->rank;
    struct pride_xfer *xs = calloc(2 * (size_t)(P - 1), sizeof *xs);
    struct pride_xfer **w = calloc(2 * (size_t)(P - 1), sizeof *w);
    int st = PRIDE_OK, n = 0;
    if (!xs || !w) {
        st = pride_error(c->ctx, PRIDE_ERR_NOMEM, "%s: out of memory for %d messages",
                         pride_coll_name(c->meta.coll), 2 * (P - 1));
        goto out;
    }
    for (int d = 1; d < P && st == PRIDE_OK; d++, n++) {
        size_t b = recv_by_rank ? (size_t)((r - d + P) % P) : (size_t)(d - 1);
        st = coll_irecv(c, &xs[n], (r - d + P) % P, (uint32_t)(d - 1), (char *)rbuf + b * len,
                        len);
        w[n] = &xs[n];
    }
    for (int d = 1; d < P && st == PRIDE_OK; d++, n++) {
        size_t b = send_by_rank ? (size_t)((r + d) % P) : 0;
        st = coll_isend(c, &xs[n], (r + d) % P, (uint32_t)(d - 1), (const char *)sbuf + b * len,
                        len);
        w[n] = &xs[n];
    }
    if (st == PRIDE_OK)
        st = coll_wait(c, w, n);
out:
    st = algo_fail(c, st);
    free(w);
    free(xs);
    return st;
}

int pride_alltoall(pride_context_t *ctx, const void *sendbuf, void *recvbuf,
                   size_t count_per_rank, pride_dtype_t dtype)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    const char *fn = "pride_alltoall";
    size_t bytes;
    int st = args_check_type(ctx, fn, dtype, 0, PRIDE_SUM, count_per_rank, (size_t)ctx->nranks,
                             &bytes);
    if (st == PRIDE_OK)
        st = args_check_buf(ctx, fn, "sendbuf", sendbuf, bytes);
    if (st == PRIDE_OK)
        st = args_check_buf(ctx, fn, "recvbuf", recvbuf, bytes);
    if (st != PRIDE_OK)
        return st;
    struct coll c;
    st = coll_begin(&c, ctx, PRIDE_COLL_ALLTOALL, dtype, 0, count_per_rank, -1);
    if (st != PRIDE_OK)
        return st;
    size_t blk = bytes / (size_t)c.nranks;
    const char *src = sendbuf;
    char *copy = NULL;
    if (algo_overlap(sendbuf, bytes, recvbuf, bytes)) {
        copy = malloc(bytes);
        if (!copy) {
            st = pride_error(ctx, PRIDE_ERR_NOMEM, "%s: no memory to copy %zu bytes aside", fn,
                             bytes);
            return coll_end(&c, st);
        }
        memcpy(copy, sendbuf, bytes);
        src = copy;
    }
    if (blk > 0)
        memcpy((char *)recvbuf + (size_t)c.rank * blk, src + (size_t)c.rank * blk, blk);
    if (c.nranks > 1)
        st = blk > 0 ? algo_direct(&c, src, 1, recvbuf, 1, blk) : algo_agree(&c);
    free(copy);
    return coll_end(&c, st);
}
