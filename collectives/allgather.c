/*
 * pride_allgather: one everyone-to-everyone round for small vectors (alltoall.c),
 * the pipelined ring (ring.c) for large ones: P-1 steps, but every byte crosses one
 * link once and every link is busy.
 *
 * This rank's block is first put in its place in recvbuf; after that recvbuf is the
 * only buffer. So sendbuf may be anywhere, including recvbuf itself (in place: the
 * input is recvbuf's first sendcount elements) or recvbuf's own block (as NCCL's in
 * place allgather has it).
 */
#include <string.h>

#include "algos.h"

int pride_allgather(pride_context_t *ctx, const void *sendbuf, void *recvbuf, size_t sendcount,
                    pride_dtype_t dtype)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    const char *fn = "pride_allgather";
    size_t bytes;
    int st = args_check_type(ctx, fn, dtype, 0, PRIDE_SUM, sendcount, (size_t)ctx->nranks, &bytes);
    size_t blk = bytes / (size_t)ctx->nranks;
    if (st == PRIDE_OK)
        st = args_check_buf(ctx, fn, "sendbuf", sendbuf, blk);
    if (st == PRIDE_OK)
        st = args_check_buf(ctx, fn, "recvbuf", recvbuf, bytes);
    if (st != PRIDE_OK)
        return st;
    struct coll c;
    st = coll_begin(&c, ctx, PRIDE_COLL_ALLGATHER, dtype, 0, sendcount, -1);
    if (st != PRIDE_OK)
        return st;
    char *own = (char *)recvbuf + (size_t)c.rank * blk;
    if (blk > 0 && sendbuf != own)
        memmove(own, sendbuf, blk);
    if (c.nranks == 1)
        return coll_end(&c, PRIDE_OK);
    if (blk == 0)
        st = algo_agree(&c);
    else if (bytes <= ALGO_ALLGATHER_DIRECT_MAX_BYTES)
        st = algo_direct(&c, own, 0, recvbuf, 1, blk);
    else
        st = ring_allgather(&c, recvbuf, sendcount * (size_t)c.nranks, dtype);
    return coll_end(&c, st);
}
