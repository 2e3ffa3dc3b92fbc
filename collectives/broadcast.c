/*
 * pride_broadcast: a binomial tree for small vectors (tree.c), a pipelined chain for
 * large ones.
 *
 * The chain runs root -> root+1 -> ... -> root-1 in chunks: every rank but the root
 * posts all its receives at once, straight into the caller's buffer, and forwards
 * chunk k as soon as it has it. Each rank moves S bytes once, and the whole takes
 * about S/B + (P-1) chunk times, where a binomial tree's root sends S log P times.
 *
 * A rank that disagrees about the root could leave every rank waiting to receive, and
 * the root hears from nobody, so the ranks agree first (algo_agree, a 0-byte
 * dissemination): then any disagreement fails every rank.
 */
#include <stdlib.h>

#include "algos.h"

static int bcast_chain(struct coll *c, void *buf, size_t count, pride_dtype_t dt, int root)
{
    int P = c->nranks, r = c->rank, vr = (r - root + P) % P;
    size_t es = pride_dtype_size(dt), ce = algo_chunk_elems(count * es, es);
    size_t C = algo_nchunks(count, ce);
    int from = vr > 0 ? (r + P - 1) % P : -1, to = vr < P - 1 ? (r + 1) % P : -1;
    struct pride_xfer *rx = calloc(C, sizeof *rx), *sx = calloc(C, sizeof *sx);
    struct pride_xfer **w = calloc(C, sizeof *w);
    int st = PRIDE_OK;
    size_t nsent = 0;
    if (!rx || !sx || !w) {
        st = pride_error(c->ctx, PRIDE_ERR_NOMEM, "broadcast of %zu elements: out of memory",
                         count);
        goto out;
    }
    for (size_t k = 0; from >= 0 && k < C && st == PRIDE_OK; k++) {
        size_t n = count - k * ce < ce ? count - k * ce : ce;
        st = coll_irecv(c, &rx[k], from, ALGO_TAG(1, k), (char *)buf + k * ce * es, n * es);
    }
    for (size_t k = 0; k < C && st == PRIDE_OK; k++) {
        if (from >= 0) {
            struct pride_xfer *x = &rx[k];
            st = coll_wait(c, &x, 1);
        }
        if (st == PRIDE_OK && to >= 0) {
            size_t n = count - k * ce < ce ? count - k * ce : ce;
            st = coll_isend(c, &sx[k], to, ALGO_TAG(1, k), (char *)buf + k * ce * es, n * es);
            w[nsent++] = &sx[k];
        }
    }
    if (st == PRIDE_OK)
        st = coll_wait(c, w, (int)nsent);
out:
    st = algo_fail(c, st);
    free(w);
    free(sx);
    free(rx);
    return st;
}

int pride_broadcast(pride_context_t *ctx, void *buf, size_t count, pride_dtype_t dtype, int root)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    const char *fn = "pride_broadcast";
    size_t bytes;
    int st = args_check_type(ctx, fn, dtype, 0, PRIDE_SUM, count, 1, &bytes);
    if (st == PRIDE_OK)
        st = args_check_buf(ctx, fn, "buf", buf, bytes);
    if (st == PRIDE_OK)
        st = args_check_root(ctx, fn, root);
    if (st != PRIDE_OK)
        return st;
    struct coll c;
    st = coll_begin(&c, ctx, PRIDE_COLL_BROADCAST, dtype, 0, count, root);
    if (st != PRIDE_OK)
        return st;
    if (c.nranks == 1)
        return coll_end(&c, PRIDE_OK);
    st = algo_agree(&c);
    if (st == PRIDE_OK && count > 0) {
        if (bytes <= ALGO_BCAST_TREE_MAX_BYTES)
            st = tree_broadcast(&c, buf, count, dtype, root);
        else
            st = bcast_chain(&c, buf, count, dtype, root);
    }
    return coll_end(&c, st);
}
