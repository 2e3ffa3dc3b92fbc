/*
 * What the collective algorithms share: argument checks, the tuning constants, the
 * mismatch check every collective starts with, and the algorithms that more than one
 * entry point runs (ring.c, rhd.c, tree.c). Internal.
 *
 * The one idea is how ranks that call different things fail together instead of
 * hanging. The transport compares the collective's arguments (meta) carried by every
 * frame with the receiver's, so:
 * - every collective on more than one rank begins by posting a send to its right
 *   neighbour (rank + 1) with tag 0, and a receive from its left one (the ring's
 *   first chunk, the barrier's first round, the first direct message, or an explicit
 *   0-byte "check" frame). If any two ranks disagree, some pair of neighbours does,
 *   and the right one of that pair sees a frame whose meta differs from its own:
 *   PRIDE_ERR_MISMATCH, which coll_end broadcasts to every rank;
 * - no rank may finish before it has heard, through a chain of received frames,
 *   from every rank (every receive being a comparison, a disagreement anywhere
 *   breaks some chain, so every rank gets the error). Allreduce, reduce-scatter,
 *   allgather and alltoall have that by nature; broadcast, reduce and calls with
 *   nothing to move run the dissemination of barrier.c first (algo_agree).
 * Other messages use tags above 0, unique per (step, chunk) within the collective.
 */
#ifndef PRIDE_ALGOS_H
#define PRIDE_ALGOS_H

#include <stddef.h>
#include <stdint.h>

#include "coll.h"
#include "pride/pride.h"

/* ---- tuning: crossovers are measured with pride-bench, change them here ----
   Allreduce, algorithm "auto": tree (recursive doubling) up to TREE_MAX bytes
   (TREE_MAX_FEW on 2 or 3 ranks), then, from 4 ranks on, recursive halving-doubling
   up to RHD_MAX_PER_RANK bytes times the rank count, then the ring. Measured with
   float32 sum on the 2-core build machine over loopback TCP, idle (pride-bench,
   medians of 3 runs): tree and rhd are level from 16 to 256 KiB on 4 to 8 ranks, and
   on links that bound the bytes (1 Gbit/s) rhd's 2(P-1)/P of the vector beats the
   tree's log P whole vectors (64 KiB on 4 hosts: 0.82 of line rate by tree), tree
   ahead of everything to 256 KiB on 3; rhd ahead of the ring up to 4 MiB on 4 ranks
   (4 MiB: 5.5 vs 6.5 ms) and up to 8 MiB on 8 (28 vs 37 ms), the ring ahead from
   8 MiB on 4 ranks (11.1 vs 12.1 ms), 16 MiB on 8, and from 1 MiB on 3. */
#define ALGO_ALLREDUCE_TREE_MAX_BYTES ((size_t)16 << 10)
#define ALGO_ALLREDUCE_TREE_MAX_BYTES_FEW ((size_t)256 << 10)
#define ALGO_ALLREDUCE_RHD_MAX_PER_RANK ((size_t)1 << 20)
/* Broadcast and reduce: binomial tree up to these many bytes, pipelined chain above.
   Measured (P = 4, 8; same caveats): a broadcast tree beats the chain up to 1-4 MiB
   on 4 ranks but only to about 128 KiB on 8 (its root sends log P copies); for
   reduce the two are within noise of each other up to 1 MiB. */
#define ALGO_BCAST_TREE_MAX_BYTES ((size_t)256 << 10)
#define ALGO_REDUCE_TREE_MAX_BYTES ((size_t)64 << 10)
/* Allgather and reduce-scatter: every rank talks to every other at once (one
   round) while the whole vector is at most these many bytes, ring above. Measured
   (P = 4): direct allgather is ahead up to 256 KiB, the ring at 1 MiB;
   reduce-scatter is level between the two up to 1 MiB. */
#define ALGO_ALLGATHER_DIRECT_MAX_BYTES ((size_t)256 << 10)
#define ALGO_REDUCE_SCATTER_DIRECT_MAX_BYTES ((size_t)64 << 10)
/* Pipelining: the chains of broadcast and reduce cut a long message into about
   ALGO_WINDOW chunks of ALGO_MIN_CHUNK_BYTES .. ALGO_CHUNK_BYTES, and where nothing
   else paces a sender (the ring's first step, a reduce chain's receive slots)
   ALGO_WINDOW chunks are in flight ahead of the one being worked on. The ring and
   rhd, where every rank sends and receives at once, cut only what exceeds
   ALGO_XCHG_CHUNK_BYTES. */
#define ALGO_CHUNK_BYTES ((size_t)256 << 10)
#define ALGO_MIN_CHUNK_BYTES ((size_t)16 << 10)
#define ALGO_WINDOW 4
#define ALGO_XCHG_CHUNK_BYTES ((size_t)1 << 20)

/* ---- tags ---- */

/* Tag of the first message from the left neighbour in every collective. */
#define ALGO_TAG_CHECK 0u
/* Tag of chunk k of step s (s >= 1) for algorithms that count steps. */
#define ALGO_TAG(s, k) (((uint32_t)(s) << 20) | (uint32_t)(k))
#define ALGO_TAG_MAX_CHUNKS ((size_t)1 << 20)

/* ---- argument checks (args.c): each leaves a sentence naming fn and returns
   PRIDE_ERR_INVALID, or returns PRIDE_OK ---- */

/* dtype is a pride_dtype_t (and, when check_op, op is valid for it); nelems*size of
   dtype bytes fits in size_t: *bytes gets it. */
int args_check_type(pride_context_t *ctx, const char *fn, pride_dtype_t dtype, int check_op,
                    pride_op_t op, size_t count, size_t mult, size_t *bytes);
/* buf may be NULL only when bytes == 0. */
int args_check_buf(pride_context_t *ctx, const char *fn, const char *name, const void *buf,
                   size_t bytes);
/* 0 <= root < nranks. */
int args_check_root(pride_context_t *ctx, const char *fn, int root);

/* ---- agreement (barrier.c); only for nranks > 1 ---- */

/* Post the 0-byte tag-0 send to the right neighbour and receive from the left one
   (xs[0], xs[1]), for algorithms that do not start that way; wait for them later. */
int algo_check_post(struct coll *c, struct pride_xfer xs[2]);
/* On 2 ranks the tree allreduce's one exchange is with the right (and left)
   neighbour: sent as step 0 (first tag ALGO_TAG_CHECK) it is the check itself. */
#define ALGO_TREE_IS_CHECK(nranks) ((nranks) == 2)
/* Dissemination: returns PRIDE_OK once every rank has entered this collective with
   the same meta. Fails through algo_fail. */
int algo_agree(struct coll *c);

/* ---- shared pieces ---- */

/* On failure (st != PRIDE_OK), end the collective at once (coll_end: tell the peers
   and make the transport drop every transfer still posted), so the caller may free
   its xfers and buffers; the entry point's own coll_end then changes nothing.
   Returns the status the call fails with. */
static inline int algo_fail(struct coll *c, int st)
{
    return st == PRIDE_OK ? st : coll_end(c, st);
}

/* Whether byte ranges [a, a+alen) and [b, b+blen) share a byte. */
static inline int algo_overlap(const void *a, size_t alen, const void *b, size_t blen)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return alen > 0 && blen > 0 && x < y + blen && y < x + alen;
}

/* Elements of block b when count elements are cut into nblocks near-equal blocks
   (the first count % nblocks blocks are one longer), and where block b starts. */
static inline size_t algo_block_len(size_t count, int nblocks, int b)
{
    return count / (size_t)nblocks + ((size_t)b < count % (size_t)nblocks);
}
static inline size_t algo_block_off(size_t count, int nblocks, int b)
{
    size_t rem = count % (size_t)nblocks;
    return (size_t)b * (count / (size_t)nblocks) + ((size_t)b < rem ? (size_t)b : rem);
}

/* Elements per chunk of a message of bytes bytes (see ALGO_WINDOW; never more than
   ALGO_TAG_MAX_CHUNKS chunks), and how many chunks a message of n elements has (at
   least 1: an empty message is still sent). Both ends compute them from the length. */
size_t algo_chunk_elems(size_t bytes, size_t esize);
/* Elements per chunk of the exchanges of ring and rhd, which need no chunks to
   overlap (every rank sends and receives at once): ALGO_XCHG_CHUNK_BYTES. */
size_t algo_xchg_chunk_elems(size_t bytes, size_t esize);
static inline size_t algo_nchunks(size_t n, size_t ce)
{
    return n ? (n + ce - 1) / ce : 1;
}

/* Send slen bytes to rank `to` and receive rlen bytes from rank `from`, and wait for
   both; either side may be absent (to or from < 0). Fails through algo_fail. */
int algo_sendrecv(struct coll *c, int to, uint32_t stag, const void *sbuf, size_t slen, int from,
                  uint32_t rtag, void *rbuf, size_t rlen);

/* Send scount elements of sbuf to rank `to` and receive rcount elements from rank
   `from` into tmp (either side may be absent: to or from < 0), chunk by chunk with
   tags ALGO_TAG(step, k); as chunk k of tmp arrives (and chunk k of the send has left),
   dst[k] = tmp[k] op src[k] (tmp_first) or src[k] op tmp[k]. dst may be sbuf or src.
   Fails through algo_fail. */
int algo_xchg_reduce(struct coll *c, int step, int to, const void *sbuf, size_t scount, int from,
                     void *tmp, size_t rcount, void *dst, const void *src, int tmp_first,
                     pride_dtype_t dt, pride_op_t op);

/* Everyone to everyone in one round (alltoall.c): for d = 1 .. P-1, send len bytes
   to rank r+d and receive len bytes from rank r-d, with tag d-1 (so the frame to the
   right neighbour is the tag-0 one). The send comes from sbuf + (r+d)*len when
   send_by_rank, else from sbuf; the receive goes to rbuf + (r-d)*len when
   recv_by_rank, else to rbuf + (d-1)*len. Fails through algo_fail. */
int algo_direct(struct coll *c, const void *sbuf, int send_by_rank, void *rbuf, int recv_by_rank,
                size_t len);

/* ---- algorithms: run inside coll_begin/coll_end on nranks > 1 and count > 0 ---- */

/* Ring (ring.c), chunked and pipelined. Blocks are algo_block_len(count, nranks, b)
   elements; rank r ends owning block r of the reduction.
   allreduce: in -> out (full vectors; in == out allowed).
   reduce_scatter: in (full) -> own (rank's block; must not overlap in).
   allgather: out holds this rank's block in place; the others are filled in. */
int ring_allreduce(struct coll *c, const void *in, void *out, size_t count, pride_dtype_t dt,
                   pride_op_t op);
int ring_reduce_scatter(struct coll *c, const void *in, void *own, size_t count,
                        pride_dtype_t dt, pride_op_t op);
int ring_allgather(struct coll *c, void *out, size_t count, pride_dtype_t dt);

/* Recursive halving-doubling with the non-power-of-two fold (rhd.c). */
int rhd_allreduce(struct coll *c, const void *in, void *out, size_t count, pride_dtype_t dt,
                  pride_op_t op);

/* Small messages (tree.c): recursive doubling allreduce with a fixed operand order
   (every rank evaluates the same expression), binomial broadcast and reduce rooted at
   root. reduce: out is used on root only. */
int tree_allreduce(struct coll *c, const void *in, void *out, size_t count, pride_dtype_t dt,
                   pride_op_t op);
int tree_broadcast(struct coll *c, void *buf, size_t count, pride_dtype_t dt, int root);
int tree_reduce(struct coll *c, const void *in, void *out, size_t count, pride_dtype_t dt,
                pride_op_t op, int root);

#endif
