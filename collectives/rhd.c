/*
 * Recursive halving-doubling allreduce (Rabenseifner), for medium vectors, and the
 * pairwise exchanges it is made of (tree.c uses them too).
 *
 * With P a power of two: in halving step j rank r swaps half of its current range
 * with the partner r ^ (P >> (j+1)), keeping and reducing the other half; after log P
 * steps rank r owns block r, reduced over every rank (in one place, so every rank
 * ends with the same bits). Doubling steps then swap the finished ranges back in the
 * reverse order. Cost: 2 log P steps, 2S(P-1)/P bytes per rank: the ring's bytes in
 * far fewer steps.
 *
 * Other P: the first 2e ranks (e = P - 2^floor(log2 P)) fold in pairs before and
 * after: the even one sends its vector to the odd one and sits out, the odd one
 * stands for both, and gets the result back at the end (one more S each way).
 *
 * Exchanges above ALGO_XCHG_CHUNK_BYTES are cut into chunks, all posted at once:
 * chunk k is reduced while the later ones are still arriving into the socket buffers.
 */
#include <stdlib.h>

#include "algos.h"
#include "reduce_kernels.h"

size_t algo_chunk_elems(size_t bytes, size_t esize)
{
    size_t chunk = bytes / ALGO_WINDOW;
    chunk = chunk < ALGO_MIN_CHUNK_BYTES ? ALGO_MIN_CHUNK_BYTES : chunk;
    chunk = chunk > ALGO_CHUNK_BYTES ? ALGO_CHUNK_BYTES : chunk;
    size_t least = bytes / ALGO_TAG_MAX_CHUNKS + 1;
    chunk = chunk < least ? least : chunk;
    return chunk / esize ? chunk / esize : 1;
}

size_t algo_xchg_chunk_elems(size_t bytes, size_t esize)
{
    size_t chunk = bytes < ALGO_XCHG_CHUNK_BYTES ? bytes : ALGO_XCHG_CHUNK_BYTES;
    size_t least = bytes / ALGO_TAG_MAX_CHUNKS + 1;
    chunk = chunk < least ? least : chunk;
    return chunk / esize ? chunk / esize : 1;
}

int algo_sendrecv(struct coll *c, int to, uint32_t stag, const void *sbuf, size_t slen, int from,
                  uint32_t rtag, void *rbuf, size_t rlen)
{
    struct pride_xfer rx, sx;
    struct pride_xfer *xs[2] = {NULL, NULL};
    int st = PRIDE_OK;
    if (from >= 0) {
        st = coll_irecv(c, &rx, from, rtag, rbuf, rlen);
        xs[0] = &rx;
    }
    if (to >= 0 && st == PRIDE_OK) {
        st = coll_isend(c, &sx, to, stag, sbuf, slen);
        xs[1] = &sx;
    }
    if (st == PRIDE_OK)
        st = coll_wait(c, xs, 2);
    return algo_fail(c, st);
}

int algo_xchg_reduce(struct coll *c, int step, int to, const void *sbuf, size_t scount, int from,
                     void *tmp, size_t rcount, void *dst, const void *src, int tmp_first,
                     pride_dtype_t dt, pride_op_t op)
{
    size_t es = pride_dtype_size(dt);
    size_t sce = algo_xchg_chunk_elems(scount * es, es);
    size_t rce = algo_xchg_chunk_elems(rcount * es, es);
    size_t ns = to >= 0 ? algo_nchunks(scount, sce) : 0;
    size_t nr = from >= 0 ? algo_nchunks(rcount, rce) : 0;
    struct pride_xfer *xs = calloc(ns + nr, sizeof *xs);
    struct pride_xfer **w = calloc(ns + nr, sizeof *w);
    int st = PRIDE_OK;
    size_t posted = 0;
    if (!xs || !w) {
        st = pride_error(c->ctx, PRIDE_ERR_NOMEM, "%s: out of memory for %zu messages",
                         pride_coll_name(c->meta.coll), ns + nr);
        goto out;
    }
    struct pride_xfer *rx = xs, *sx = xs + nr;
    for (size_t k = 0; k < nr && st == PRIDE_OK; k++, posted++) {
        size_t off = k * rce, n = rcount - off < rce ? rcount - off : rce;
        st = coll_irecv(c, &rx[k], from, ALGO_TAG(step, k), (char *)tmp + off * es, n * es);
        w[posted] = &rx[k];
    }
    for (size_t k = 0; k < ns && st == PRIDE_OK; k++, posted++) {
        size_t off = k * sce, n = scount - off < sce ? scount - off : sce;
        st = coll_isend(c, &sx[k], to, ALGO_TAG(step, k), (const char *)sbuf + off * es, n * es);
        w[posted] = &sx[k];
    }
    for (size_t k = 0; k < nr && st == PRIDE_OK; k++) {
        /* When dst is what is being sent (same length, same chunks), chunk k may only
           change once it has left. */
        struct pride_xfer *pair[2] = {&rx[k], dst == sbuf && k < ns ? &sx[k] : NULL};
        st = coll_wait(c, pair, 2);
        if (st != PRIDE_OK)
            break;
        size_t off = k * rce, n = rcount - off < rce ? rcount - off : rce;
        const char *t = (const char *)tmp + off * es, *s = (const char *)src + off * es;
        reduce_apply3((char *)dst + off * es, tmp_first ? t : s, tmp_first ? s : t, n, dt, op);
    }
    if (st == PRIDE_OK)
        st = coll_wait(c, w, (int)posted);
out:
    st = algo_fail(c, st);
    free(w);
    free(xs);
    return st;
}

/* The rank that stands for virtual rank v after the fold of the first 2*extra ranks. */
static int rhd_real(int v, int extra)
{
    return v < extra ? 2 * v + 1 : v + extra;
}

int rhd_allreduce(struct coll *c, const void *in, void *out, size_t count, pride_dtype_t dt,
                  pride_op_t op)
{
    int P = c->nranks, r = c->rank, p2 = 1, L = 0;
    while (p2 * 2 <= P) {
        p2 *= 2;
        L++;
    }
    int extra = P - p2;
    size_t es = pride_dtype_size(dt);
    char *o = out;
    const char *cur = in;
    /* Receives land here: the whole vector when folding, else at most half of it. */
    size_t tmpn = r < 2 * extra ? count : algo_block_off(count, p2, p2 / 2);
    size_t tcap;
    char *tmp = coll_scratch(c, tmpn * es + 1, &tcap);
    if (!tmp)
        return pride_error(c->ctx, PRIDE_ERR_NOMEM, "rhd allreduce of %zu elements: out of memory",
                           count);
    int st = PRIDE_OK, v;
    if (r < 2 * extra && r % 2 == 0) {
        st = algo_xchg_reduce(c, 1, r + 1, in, count, -1, NULL, 0, NULL, NULL, 0, dt, op);
        v = -1;
    } else if (r < 2 * extra) {
        st = algo_xchg_reduce(c, 1, -1, NULL, 0, r - 1, tmp, count, o, in, 1, dt, op);
        cur = o;
        v = r / 2;
    } else {
        v = r - extra;
    }
    if (v >= 0) {
        /* Halving: keep [lo, hi) of the p2 blocks, the lower half when v is lower. */
        int lo = 0, hi = p2;
        for (int j = 0; j < L && st == PRIDE_OK; j++) {
            int d = p2 >> (j + 1), pv = v ^ d, mid = lo + (hi - lo) / 2;
            int klo = v < pv ? lo : mid, khi = v < pv ? mid : hi;
            int glo = v < pv ? mid : lo, ghi = v < pv ? hi : mid;
            size_t koff = algo_block_off(count, p2, klo);
            size_t kn = algo_block_off(count, p2, khi) - koff;
            size_t goff = algo_block_off(count, p2, glo);
            size_t gn = algo_block_off(count, p2, ghi) - goff;
            int peer = rhd_real(pv, extra);
            st = algo_xchg_reduce(c, 2 + j, peer, cur + goff * es, gn, peer, tmp, kn, o + koff * es,
                                  cur + koff * es, pv < v, dt, op);
            cur = o;
            lo = klo;
            hi = khi;
        }
        if (st == PRIDE_OK && op == PRIDE_AVG) {
            size_t off = algo_block_off(count, p2, v);
            pride_avg_finish(o + off * es, algo_block_len(count, p2, v), dt, P);
        }
        /* Doubling: swap finished ranges of d blocks with the partner. */
        for (int j = 0, d = 1; d < p2 && st == PRIDE_OK; j++, d *= 2) {
            int mine = v & ~(d - 1), theirs = mine ^ d, peer = rhd_real(v ^ d, extra);
            size_t moff = algo_block_off(count, p2, mine);
            size_t toff = algo_block_off(count, p2, theirs);
            size_t mn = algo_block_off(count, p2, mine + d) - moff;
            size_t tn = algo_block_off(count, p2, theirs + d) - toff;
            uint32_t tag = ALGO_TAG(2 + L + j, 0);
            st = algo_sendrecv(c, peer, tag, o + moff * es, mn * es, peer, tag, o + toff * es,
                               tn * es);
        }
    }
    if (st == PRIDE_OK && r < 2 * extra) {
        uint32_t tag = ALGO_TAG(2 + 2 * L, 0);
        if (r % 2)
            st = algo_sendrecv(c, r - 1, tag, o, count * es, -1, 0, NULL, 0);
        else
            st = algo_sendrecv(c, -1, 0, NULL, 0, r + 1, tag, o, count * es);
    }
    coll_scratch_put(c, tmp, tcap);
    return st;
}
