/*
 * The latency-bound algorithms, for small vectors: log P rounds, whole vectors.
 *
 * Allreduce by recursive doubling (what PRIDE_ALGO_TREE selects): in round j every
 * rank swaps its whole partial result with the partner r ^ 2^j and combines the two.
 * That is a butterfly rather than a tree: log P rounds instead of the 2 log P of a
 * binomial reduce followed by a broadcast, at the same S bytes per round. Ranks get
 * bit-identical results without a broadcast because every combination is written
 * (lower ranks' partial) op (higher ranks' partial), so every rank evaluates the same
 * expression in the same order. Other P fold the first 2e ranks in pairs as rhd.c
 * does (2 more rounds).
 *
 * Broadcast and reduce on a binomial tree rooted at root (ranks renumbered so the
 * root is 0): the children of v are v + 2^k for 2^k below v's lowest set bit. A
 * reduce posts every child's receive at once, so leaves send first and nothing waits
 * on a sibling; a node combines (its own range) op (child's range), in rank order.
 */
#include <stdlib.h>
#include <string.h>

#include "algos.h"
#include "reduce_kernels.h"

int tree_allreduce(struct coll *c, const void *in, void *out, size_t count, pride_dtype_t dt,
                   pride_op_t op)
{
    int P = c->nranks, r = c->rank, p2 = 1, L = 0;
    while (p2 * 2 <= P) {
        p2 *= 2;
        L++;
    }
    int extra = P - p2;
    size_t es = pride_dtype_size(dt), bytes = count * es;
    size_t tcap;
    char *tmp = coll_scratch(c, bytes + 1, &tcap);
    if (!tmp)
        return pride_error(c->ctx, PRIDE_ERR_NOMEM, "tree allreduce of %zu bytes: out of memory",
                           bytes);
    if (in != out)
        memcpy(out, in, bytes);
    int st = PRIDE_OK, v;
    if (r < 2 * extra && r % 2 == 0) {
        st = algo_xchg_reduce(c, 1, r + 1, out, count, -1, NULL, 0, NULL, NULL, 0, dt, op);
        v = -1;
    } else if (r < 2 * extra) {
        st = algo_xchg_reduce(c, 1, -1, NULL, 0, r - 1, tmp, count, out, out, 1, dt, op);
        v = r / 2;
    } else {
        v = r - extra;
    }
    for (int j = 0, d = 1; v >= 0 && d < p2 && st == PRIDE_OK; j++, d *= 2) {
        int pv = v ^ d, peer = pv < extra ? 2 * pv + 1 : pv + extra;
        st = algo_xchg_reduce(c, ALGO_TREE_IS_CHECK(P) ? 0 : 2 + j, peer, out, count, peer, tmp,
                              count, out, out, pv < v, dt, op);
    }
    if (st == PRIDE_OK && v >= 0 && op == PRIDE_AVG)
        pride_avg_finish(out, count, dt, P);
    if (st == PRIDE_OK && r < 2 * extra) {
        uint32_t tag = ALGO_TAG(2 + L, 0);
        if (r % 2)
            st = algo_sendrecv(c, r - 1, tag, out, bytes, -1, 0, NULL, 0);
        else
            st = algo_sendrecv(c, -1, 0, NULL, 0, r + 1, tag, out, bytes);
    }
    coll_scratch_put(c, tmp, tcap);
    return st;
}

/* log2 of a power of two. */
static int tree_log2(int m)
{
    int k = 0;
    while ((1 << k) < m)
        k++;
    return k;
}

int tree_broadcast(struct coll *c, void *buf, size_t count, pride_dtype_t dt, int root)
{
    int P = c->nranks, r = c->rank, vr = (r - root + P) % P;
    size_t bytes = count * pride_dtype_size(dt);
    int st = PRIDE_OK, mask = 1;
    for (; mask < P && st == PRIDE_OK; mask <<= 1) {
        if (vr & mask) {
            st = algo_sendrecv(c, -1, 0, NULL, 0, (r - mask + P) % P,
                               ALGO_TAG(1 + tree_log2(mask), 0), buf, bytes);
            break;
        }
    }
    struct pride_xfer xs[32];
    struct pride_xfer *w[32];
    int n = 0;
    for (mask >>= 1; mask > 0 && st == PRIDE_OK; mask >>= 1) {
        if (vr + mask >= P)
            continue;
        st = coll_isend(c, &xs[n], (r + mask) % P, ALGO_TAG(1 + tree_log2(mask), 0), buf, bytes);
        w[n] = &xs[n];
        n++;
    }
    if (st == PRIDE_OK)
        st = coll_wait(c, w, n);
    return algo_fail(c, st);
}

int tree_reduce(struct coll *c, const void *in, void *out, size_t count, pride_dtype_t dt,
                pride_op_t op, int root)
{
    int P = c->nranks, r = c->rank, vr = (r - root + P) % P;
    size_t es = pride_dtype_size(dt), bytes = count * es;
    int nchild = 0, parent_mask = 0;
    for (int m = 1; m < P; m <<= 1) {
        if (vr & m) {
            parent_mask = m;
            break;
        }
        if (vr + m < P)
            nchild++;
    }
    /* acc: the root's output, a copy of the input on inner nodes, the input itself on leaves */
    int inner = vr != 0 && nchild > 0;
    size_t tcap, tlen = bytes * (size_t)(nchild + inner);
    char *tmp = coll_scratch(c, tlen + 1, &tcap);
    if (!tmp)
        return pride_error(c->ctx, PRIDE_ERR_NOMEM, "reduce of %zu bytes: out of memory", bytes);
    const char *acc = in;
    if (vr == 0 || inner) {
        char *a = vr == 0 ? out : tmp + bytes * (size_t)nchild;
        if (a != in)
            memcpy(a, in, bytes);
        acc = a;
    }
    struct pride_xfer xs[32];
    int st = PRIDE_OK, k = 0;
    for (int m = 1; k < nchild && st == PRIDE_OK; m <<= 1, k++)
        st = coll_irecv(c, &xs[k], (r + m) % P, ALGO_TAG(1 + tree_log2(m), 0),
                        tmp + bytes * (size_t)k, bytes);
    for (int m = 1, j = 0; j < k && st == PRIDE_OK; m <<= 1, j++) {
        struct pride_xfer *x = &xs[j];
        st = coll_wait(c, &x, 1);
        if (st == PRIDE_OK)
            reduce_apply((char *)acc, tmp + bytes * (size_t)j, count, dt, op);
    }
    if (st == PRIDE_OK && vr == 0 && op == PRIDE_AVG)
        pride_avg_finish(out, count, dt, P);
    st = algo_fail(c, st);
    if (st == PRIDE_OK && vr != 0)
        st = algo_sendrecv(c, (r - parent_mask + P) % P, ALGO_TAG(1 + tree_log2(parent_mask), 0),
                           acc, bytes, -1, 0, NULL, 0);
    coll_scratch_put(c, tmp, tcap);
    return st;
}
