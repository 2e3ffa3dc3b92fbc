/*
 * Bit-sliced majority vote (pride_vote) and sign count (pride_vote_count) on a ring,
 * and the allgather baseline they are measured against (pride_vote_allgather).
 *
 * The nwords = ceil(nbits/64) words are cut into P blocks. Reduce-scatter step s
 * (0 .. P-2): rank r sends block r-s holding s+1 votes as bitplane_planes(s+1) bit
 * planes and receives block r-s-1 with as many, then adds its own vote to it with a
 * ripple of full adders on whole words (bitplane_add_vote). After P-1 steps rank r
 * holds block r+1 counted over all P ranks. pride_vote turns that block into the
 * majority bit as it adds the last vote (bitplane_add_majority: the final counts
 * stay in registers, never written) and allgathers the 1-bit blocks on the same
 * ring; pride_vote_count allgathers the bitplane_planes(P)-plane counts and expands
 * them to bytes. Bytes sent per rank for n elements:
 * n/(8P) * (sum_{k=1}^{P-1} planes(k) + P-1), about
 * 2 bits per element at P = 4 and 3 at P = 8, against 32 for a float32 allreduce.
 * The baseline allgathers every rank's whole vector instead (P-1 bits per element)
 * the way pride_allgather does, then counts locally (vote_gather, vote_tally).
 *
 * Pipelining: every block is cut into chunks of at most VOTE_CHUNK_WORDS words, and
 * the chunks into segments of VOTE_GROUP chunks per block. An item is (segment,
 * step, chunk), numbered in that order; its number is its tag. Items are taken in
 * order: an item is added (or its majority taken) the moment it arrives and goes
 * straight back on the wire as the same chunk's next step, VOTE_GROUP items later,
 * while the receives of the next VOTE_LOOKAHEAD items are already posted, so adding
 * one chunk overlaps the transfer of the next. Segments keep that next step within
 * the neighbour's posted receives, so data lands straight in the buffer meant for it
 * (a frame that comes before its receive is buffered by the transport: correct, one
 * copy slower). Reduce-scatter items land in a few chunk slots (cache-hot);
 * allgather items land in the output. Bits past nbits are masked from the input (a
 * copy of the one chunk holding the last word), so counts there are 0 and the output
 * bits 0.
 */
#include <stdlib.h>
#include <string.h>

#include "algos.h"
#include "bitplane.h"
#include "coll.h"
#include "vote_internal.h"

#define VOTE_CHUNK_WORDS ((size_t)8192) /* 64 KiB of signs per plane per chunk */
#define VOTE_GROUP 4                    /* chunks per block per segment */
#define VOTE_LOOKAHEAD (2 * VOTE_GROUP) /* items whose receive is posted ahead */
/* Slots for the receives ahead, plus the forwards on the wire that read from slots. */
#define VOTE_SLOTS (VOTE_LOOKAHEAD + VOTE_GROUP + 2)
#define VOTE_MAX_RANKS 256  /* pride_vote */
#define VOTE_COUNT_MAX 255  /* pride_vote_count: counts are bytes */

struct vote {
    struct coll *c;
    int P, r;
    int np;           /* planes of a full count: bitplane_planes(P) */
    int counting;     /* allgather count planes (pride_vote_count), not majority bits */
    int rs_steps;     /* P-1; 0 for the allgather baseline */
    int steps;        /* rs_steps + P-1 */
    int own_block;    /* the block this rank holds whole before the allgather */
    pride_tie_t tie;
    size_t nbits, nwords;
    size_t bq, brem;  /* block b has bq + (b < brem) words */
    const uint64_t *in;
    uint64_t *tail;   /* masked copy of the chunk that ends in a partial word, or NULL */
    uint64_t *bits;   /* allgather target, 1 plane: recvbits (baseline: all vectors) */
    size_t bits_cap;  /* baseline: bits is coll scratch of this capacity */
    size_t cnt_cap;   /* cnt is coll scratch of this capacity */
    uint64_t *cnt;    /* pride_vote_count: np planes per chunk, chunk after chunk */
    uint8_t *counts;
    size_t cw, nseg, nitems;
    struct pride_xfer *rx, *sx; /* per item: its receive, and this rank's send */
    unsigned char *sent;        /* sx[i] was posted */
    int *slot_of;               /* per item: the slot holding its data */
    uint64_t *slots;
    size_t slot_words;
    int free_slot[VOTE_SLOTS], nfree;
    size_t held[VOTE_SLOTS];    /* sends still reading from a slot, oldest first */
    int held_head, nheld;
};

/* One item as this rank sees it: the step, and the chunk's words [w0, w0 + len). */
struct vote_item {
    int s;
    size_t w0, len;
};

static int vote_mod(int a, int P)
{
    return ((a % P) + P) % P;
}

static size_t vote_block_len(const struct vote *v, int b)
{
    return v->bq + ((size_t)b < v->brem);
}

static size_t vote_block_off(const struct vote *v, int b)
{
    return (size_t)b * v->bq + ((size_t)b < v->brem ? (size_t)b : v->brem);
}

/* Item i as received (sending = 0) or as sent by this rank (sending = 1). The right
   neighbour receives item i from the block this rank sends, so both see one chunk. */
static void vote_item(const struct vote *v, size_t i, int sending, struct vote_item *it)
{
    size_t per_seg = (size_t)v->steps * VOTE_GROUP, rem = i % per_seg;
    int s = (int)(rem / VOTE_GROUP);
    size_t k = (i / per_seg) * VOTE_GROUP + rem % VOTE_GROUP;
    int b;
    if (s < v->rs_steps)
        b = vote_mod(v->r - s - !sending, v->P);
    else
        b = vote_mod(v->own_block - (s - v->rs_steps) - !sending, v->P);
    size_t bl = vote_block_len(v, b), off = k * v->cw < bl ? k * v->cw : bl;
    it->s = s;
    it->w0 = vote_block_off(v, b) + off;
    it->len = bl - off < v->cw ? bl - off : v->cw;
}

/* Planes an item of step s carries. */
static int vote_planes(const struct vote *v, int s)
{
    if (s < v->rs_steps)
        return bitplane_planes(s + 1);
    return v->counting ? v->np : 1;
}

/* Where a chunk's allgathered result lives. */
static uint64_t *vote_out(const struct vote *v, size_t w0)
{
    return v->counting ? v->cnt + (size_t)v->np * w0 : v->bits + w0;
}

/* Step s's data is received into a slot: every reduce-scatter step but the count's
   last, which is received into the count planes and completed there. */
static int vote_in_slot(const struct vote *v, int s)
{
    return s < v->rs_steps - 1 || (s == v->rs_steps - 1 && !v->counting);
}

/* Step s's data is forwarded from its slot: every reduce-scatter step but the last
   (whose result, majority or counts, is forwarded from the output). */
static int vote_fwd_slot(const struct vote *v, int s)
{
    return s < v->rs_steps - 1;
}

static uint64_t *vote_slot(const struct vote *v, int slot)
{
    return v->slots + (size_t)slot * v->slot_words;
}

/* This rank's own vote for a chunk, with the bits past nbits cleared. */
static const uint64_t *vote_own(const struct vote *v, const struct vote_item *it)
{
    return v->tail && it->w0 + it->len == v->nwords ? v->tail : v->in + it->w0;
}

static int vote_slot_take(struct vote *v, int *slot)
{
    if (v->nfree == 0) {
        /* Every slot not awaiting a receive is the source of a send on the wire
           (VOTE_SLOTS > VOTE_LOOKAHEAD + 1 guarantees there is one): wait for the oldest. */
        size_t j = v->held[v->held_head];
        struct pride_xfer *x = &v->sx[j];
        int st = coll_wait(v->c, &x, 1);
        if (st)
            return st;
        v->held_head = (v->held_head + 1) % VOTE_SLOTS;
        v->nheld--;
        v->free_slot[v->nfree++] = v->slot_of[j - VOTE_GROUP];
    }
    *slot = v->free_slot[--v->nfree];
    return PRIDE_OK;
}

static int vote_post_recv(struct vote *v, size_t i)
{
    struct vote_item it;
    vote_item(v, i, 0, &it);
    if (it.len == 0)
        return PRIDE_OK;
    uint64_t *dst = vote_out(v, it.w0);
    if (vote_in_slot(v, it.s)) {
        int st = vote_slot_take(v, &v->slot_of[i]);
        if (st)
            return st;
        dst = vote_slot(v, v->slot_of[i]);
    }
    return coll_irecv(v->c, &v->rx[i], vote_mod(v->r - 1, v->P), (uint32_t)i, dst,
                      (size_t)vote_planes(v, it.s) * it.len * 8);
}

static int vote_post_send(struct vote *v, size_t i)
{
    struct vote_item it;
    vote_item(v, i, 1, &it);
    if (it.len == 0)
        return PRIDE_OK;
    const uint64_t *src;
    if (it.s == 0 && v->rs_steps > 0) {
        src = vote_own(v, &it);
    } else if (it.s > 0 && vote_fwd_slot(v, it.s - 1)) {
        src = vote_slot(v, v->slot_of[i - VOTE_GROUP]);
        v->held[(v->held_head + v->nheld++) % VOTE_SLOTS] = i;
    } else {
        src = vote_out(v, it.w0);
    }
    v->sent[i] = 1;
    return coll_isend(v->c, &v->sx[i], (v->r + 1) % v->P, (uint32_t)i, src,
                      (size_t)vote_planes(v, it.s) * it.len * 8);
}

/* Item i has arrived: add this rank's vote (reduce-scatter), take the majority or keep
   the counts (its last step), forward it, expand counts that are final. */
static int vote_process(struct vote *v, size_t i)
{
    struct vote_item it;
    vote_item(v, i, 0, &it);
    if (it.s < v->rs_steps) {
        int nin = bitplane_planes(it.s + 1), nout = bitplane_planes(it.s + 2);
        uint64_t *acc = vote_in_slot(v, it.s) ? vote_slot(v, v->slot_of[i]) : vote_out(v, it.w0);
        if (it.s == v->rs_steps - 1 && !v->counting) {
            /* the last step: the majority straight from the received counts and this
               rank's vote, the final counts never written */
            bitplane_add_majority(vote_out(v, it.w0), acc, nin, nout, vote_own(v, &it), it.len,
                                  v->P, v->tie, 64 * it.w0);
            v->free_slot[v->nfree++] = v->slot_of[i];
        } else {
            bitplane_add_vote(acc, acc, nin, nout, vote_own(v, &it), it.len);
        }
    }
    if (it.s + 1 < v->steps) {
        int st = vote_post_send(v, i + VOTE_GROUP);
        if (st)
            return st;
    }
    if (v->counting && it.s >= v->rs_steps - 1) {
        size_t left = v->nbits - 64 * it.w0;
        bitplane_to_counts(v->counts + 64 * it.w0, vote_out(v, it.w0), v->np, it.len,
                           left < 64 * it.len ? left : 64 * it.len);
    }
    return PRIDE_OK;
}

static int vote_ring(struct vote *v)
{
    size_t next_recv = 0, next_first = 0; /* next receive to post, next step-0 send */
    size_t per_seg = (size_t)v->steps * VOTE_GROUP;
    int st = PRIDE_OK;
    for (size_t i = 0; i < v->nitems; i++) {
        /* step-0 sends need nothing received: post them as the receiver gets ready */
        for (; next_first < v->nitems && next_first <= i + VOTE_LOOKAHEAD; next_first++)
            if (next_first % per_seg < VOTE_GROUP && (st = vote_post_send(v, next_first)) != 0)
                return st;
        for (; next_recv < v->nitems && next_recv <= i + VOTE_LOOKAHEAD; next_recv++)
            if ((st = vote_post_recv(v, next_recv)) != 0)
                return st;
        struct vote_item it;
        vote_item(v, i, 0, &it);
        if (it.len == 0)
            continue;
        struct pride_xfer *x = &v->rx[i];
        if ((st = coll_wait(v->c, &x, 1)) != 0 || (st = vote_process(v, i)) != 0)
            return st;
    }
    struct pride_xfer **xs = malloc((v->nitems + 1) * sizeof *xs);
    if (!xs)
        return pride_error(v->c->ctx, PRIDE_ERR_NOMEM, "vote: out of memory");
    int n = 0;
    for (size_t i = 0; i < v->nitems; i++)
        if (v->sent[i])
            xs[n++] = &v->sx[i];
    st = coll_wait(v->c, xs, n);
    free(xs);
    return st;
}

/* The baseline's exchange: every rank's whole vector to every rank, as pride_allgather
   moves it (one direct round for small vectors, the ring with large blocks above); the
   count follows (vote_tally). */
static int vote_gather(struct vote *v)
{
    size_t blk = v->nwords * 8;
    if (blk == 0)
        return algo_agree(v->c);
    if (blk * (size_t)v->P <= ALGO_ALLGATHER_DIRECT_MAX_BYTES)
        return algo_direct(v->c, v->bits + (size_t)v->r * v->nwords, 0, v->bits, 1, blk);
    return ring_allgather(v->c, v->bits, v->nwords * (size_t)v->P, PRIDE_UINT64);
}

/* The baseline's local count: add every rank's vector, a chunk of words at a time so
   the counter planes stay in cache, and take the majority. */
static void vote_tally(const struct vote *v, uint64_t *recvbits, uint64_t *acc)
{
    for (size_t w0 = 0; w0 < v->nwords; w0 += VOTE_CHUNK_WORDS) {
        size_t len = v->nwords - w0 < VOTE_CHUNK_WORDS ? v->nwords - w0 : VOTE_CHUNK_WORDS;
        for (int q = 0; q < v->P - 1; q++)
            bitplane_add_vote(acc, acc, bitplane_planes(q), bitplane_planes(q + 1),
                              v->bits + (size_t)q * v->nwords + w0, len);
        bitplane_add_majority(recvbits + w0, acc, bitplane_planes(v->P - 1), v->np,
                              v->bits + (size_t)(v->P - 1) * v->nwords + w0, len, v->P, v->tie,
                              64 * w0);
    }
}

static void *vote_alloc(size_t words)
{
    void *p = NULL;
    return posix_memalign(&p, 64, words ? words * 8 : 8) == 0 ? p : NULL;
}

static void vote_release(struct vote *v)
{
    free(v->tail);
    coll_scratch_put(v->c, v->cnt, v->cnt_cap);
    free(v->rx);
    free(v->sx);
    free(v->sent);
    free(v->slot_of);
    free(v->slots);
    if (v->rs_steps == 0 && v->bits_cap) /* (before the scratch, bits is recvbits) */
        coll_scratch_put(v->c, v->bits, v->bits_cap);
}

/* Chunk geometry, buffers, and the masked copies of this rank's input. */
static int vote_setup(struct vote *v, struct coll *c, enum pride_coll_kind kind,
                      const uint64_t *in, uint64_t *recvbits, uint8_t *counts, size_t nbits,
                      pride_tie_t tie)
{
    memset(v, 0, sizeof *v);
    v->c = c;
    v->P = c->nranks;
    v->r = c->rank;
    v->np = bitplane_planes(v->P);
    v->counting = kind == PRIDE_COLL_VOTE_COUNT;
    v->rs_steps = kind == PRIDE_COLL_VOTE_ALLGATHER ? 0 : v->P - 1;
    v->steps = v->rs_steps + v->P - 1;
    v->own_block = v->rs_steps ? (v->r + 1) % v->P : v->r;
    v->tie = tie;
    v->nbits = nbits;
    v->nwords = nbits / 64 + (nbits % 64 != 0);
    v->in = in;
    v->bits = recvbits;
    v->counts = counts;
    v->bq = v->rs_steps ? v->nwords / (size_t)v->P : v->nwords;
    v->brem = v->rs_steps ? v->nwords % (size_t)v->P : 0;
    uint64_t lastmask = nbits % 64 ? (UINT64_C(1) << (nbits % 64)) - 1 : ~UINT64_C(0);

    size_t lmax = v->bq + (v->brem > 0);
    size_t nchunks = lmax ? (lmax + VOTE_CHUNK_WORDS - 1) / VOTE_CHUNK_WORDS : 0;
    v->cw = nchunks ? (lmax + nchunks - 1) / nchunks : 1; /* even chunks */
    v->nseg = (nchunks + VOTE_GROUP - 1) / VOTE_GROUP;
    /* tags are uint32 and the final wait takes an int count */
    while (v->nseg > (size_t)INT32_MAX / ((size_t)v->steps * VOTE_GROUP + 1)) {
        v->cw *= 2;
        nchunks = (lmax + v->cw - 1) / v->cw;
        v->nseg = (nchunks + VOTE_GROUP - 1) / VOTE_GROUP;
    }
    v->nitems = v->nseg * (size_t)v->steps * VOTE_GROUP;
    v->slot_words = ((size_t)v->np * v->cw + 7) & ~(size_t)7;

    v->rx = calloc(v->nitems + 1, sizeof *v->rx);
    v->sx = calloc(v->nitems + 1, sizeof *v->sx);
    v->sent = calloc(v->nitems + 1, 1);
    v->slot_of = calloc(v->nitems + 1, sizeof *v->slot_of);
    if (!v->rx || !v->sx || !v->sent || !v->slot_of)
        goto nomem;
    if (v->rs_steps > 1 || (v->rs_steps == 1 && !v->counting)) {
        if (!(v->slots = vote_alloc(VOTE_SLOTS * v->slot_words)))
            goto nomem;
        for (int s = 0; s < VOTE_SLOTS; s++)
            v->free_slot[v->nfree++] = VOTE_SLOTS - 1 - s;
    }
    /* reused across calls like the baseline's vectors: faulting in the count planes on
       every call cost more than the tally (4 ranks, 64M elements: 270-380 -> 88-90 ms) */
    if (v->counting &&
        !(v->cnt = coll_scratch(c, (size_t)v->np * v->nwords * 8 + 8, &v->cnt_cap)))
        goto nomem;
    if (v->rs_steps == 0) {
        /* the baseline gathers every vector; its own goes in first, masked */
        /* reused across calls: faulting in P vectors every call cost more than the count */
        v->bits = coll_scratch(c, (size_t)v->P * v->nwords * 8 + 8, &v->bits_cap);
        if (!v->bits)
            goto nomem;
        uint64_t *mine = v->bits + (size_t)v->r * v->nwords;
        if (v->nwords) {
            memcpy(mine, in, v->nwords * 8);
            mine[v->nwords - 1] &= lastmask;
        }
    } else if (nbits % 64) {
        /* the one chunk ending in the partial word: blocks are in word order, so it is
           the last chunk of the last non-empty block */
        int b = v->P - 1;
        while (vote_block_len(v, b) == 0)
            b--;
        size_t bl = vote_block_len(v, b), w0 = vote_block_off(v, b) + (bl - 1) / v->cw * v->cw;
        size_t len = v->nwords - w0;
        if (!(v->tail = vote_alloc(len)))
            goto nomem;
        memcpy(v->tail, in + w0, len * 8);
        v->tail[len - 1] &= lastmask;
    }
    return PRIDE_OK;
nomem:
    return pride_error(c->ctx, PRIDE_ERR_NOMEM, "%s: out of memory for %zu bits on %d ranks",
                       pride_coll_name(kind), nbits, v->P);
}

/* One rank: the count is the bit itself. */
static void vote_alone(const uint64_t *in, uint64_t *recvbits, uint8_t *counts, size_t nbits)
{
    size_t nwords = nbits / 64 + (nbits % 64 != 0);
    if (counts) {
        for (size_t i = 0; i < nbits; i++)
            counts[i] = (uint8_t)((in[i / 64] >> (i % 64)) & 1);
        return;
    }
    if (nwords == 0)
        return;
    memmove(recvbits, in, nwords * 8);
    if (nbits % 64)
        recvbits[nwords - 1] &= (UINT64_C(1) << (nbits % 64)) - 1;
}

static int vote_run(pride_context_t *ctx, enum pride_coll_kind kind, const uint64_t *in,
                    uint64_t *recvbits, uint8_t *counts, size_t nbits, pride_tie_t tie)
{
    struct coll c;
    int st = coll_begin(&c, ctx, kind, 0, kind == PRIDE_COLL_VOTE_COUNT ? 0 : (int)tie, nbits,
                        -1);
    if (st)
        return st;
    if (c.nranks == 1) {
        vote_alone(in, recvbits, counts, nbits);
        return coll_end(&c, PRIDE_OK);
    }
    struct vote v;
    uint64_t *acc = NULL;
    st = vote_setup(&v, &c, kind, in, recvbits, counts, nbits, tie);
    if (!st)
        st = kind == PRIDE_COLL_VOTE_ALLGATHER ? vote_gather(&v) : vote_ring(&v);
    if (!st && kind == PRIDE_COLL_VOTE_ALLGATHER) {
        if ((acc = vote_alloc((size_t)v.np * VOTE_CHUNK_WORDS)) != NULL)
            vote_tally(&v, recvbits, acc);
        else
            st = pride_error(ctx, PRIDE_ERR_NOMEM, "vote allgather: out of memory");
    }
    /* coll_end drops the transport's references to our buffers on failure: free after */
    st = coll_end(&c, st);
    free(acc);
    vote_release(&v);
    return st;
}

static int vote_check(pride_context_t *ctx, const char *fn, const void *in, const void *out,
                      size_t nbits, int tie, int maxranks)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    if (nbits && (!in || !out))
        return pride_error(ctx, PRIDE_ERR_INVALID, "%s: %s is NULL with nbits = %zu", fn,
                           in ? "the output" : "sendbits", nbits);
    if (tie != PRIDE_TIE_NEGATIVE && tie != PRIDE_TIE_POSITIVE && tie != PRIDE_TIE_ALTERNATE)
        return pride_error(ctx, PRIDE_ERR_INVALID,
                           "%s: tie rule %d is not NEGATIVE, POSITIVE or ALTERNATE", fn, tie);
    if (ctx->nranks > maxranks)
        return pride_error(ctx, PRIDE_ERR_UNSUPPORTED, "%s: %d ranks; at most %d are supported",
                           fn, ctx->nranks, maxranks);
    /* the baseline keeps every rank's vector, the count 8 planes: keep sizes sane */
    if (nbits > SIZE_MAX / 16 / (size_t)ctx->nranks)
        return pride_error(ctx, PRIDE_ERR_INVALID, "%s: nbits = %zu is too large", fn, nbits);
    return PRIDE_OK;
}

int pride_vote(pride_context_t *ctx, const uint64_t *sendbits, uint64_t *recvbits, size_t nbits,
               pride_tie_t tie)
{
    int st = vote_check(ctx, "pride_vote", sendbits, recvbits, nbits, (int)tie, VOTE_MAX_RANKS);
    if (st)
        return st;
    return vote_run(ctx, PRIDE_COLL_VOTE, sendbits, recvbits, NULL, nbits, tie);
}

int pride_vote_count(pride_context_t *ctx, const uint64_t *sendbits, uint8_t *counts,
                     size_t nbits)
{
    int st = vote_check(ctx, "pride_vote_count", sendbits, counts, nbits, PRIDE_TIE_NEGATIVE,
                        VOTE_COUNT_MAX);
    if (st)
        return st;
    return vote_run(ctx, PRIDE_COLL_VOTE_COUNT, sendbits, NULL, counts, nbits,
                    PRIDE_TIE_NEGATIVE);
}

int pride_vote_allgather(pride_context_t *ctx, const uint64_t *sendbits, uint64_t *recvbits,
                         size_t nbits, pride_tie_t tie)
{
    int st = vote_check(ctx, "pride_vote_allgather", sendbits, recvbits, nbits, (int)tie,
                        VOTE_MAX_RANKS);
    if (st)
        return st;
    return vote_run(ctx, PRIDE_COLL_VOTE_ALLGATHER, sendbits, recvbits, NULL, nbits, tie);
}
