/*
 * Shared by the reliability tests: a data exchange whose every byte is checked. Each
 * rank sends a pattern of count 32-bit words to every rank and adds up what comes
 * back; the sum is known in closed form, so a wrong result is told apart from an
 * error. Built on the collectives' point-to-point frame (coll.h).
 */
#ifndef PRIDE_TEST_REL_H
#define PRIDE_TEST_REL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"

/* returned by rel_check_sum when every call succeeded but the data is wrong */
#define REL_WRONG 1

static inline uint32_t rel_word(int rank, int round, size_t i)
{
    return (uint32_t)(rank + 1) * 2654435761u ^ (uint32_t)round * 40503u ^ (uint32_t)i * 97u;
}

/* rounds exchanges of count words; PRIDE_OK, a pride status, or REL_WRONG. */
static inline int rel_check_sum(pride_context_t *ctx, size_t count, int rounds)
{
    int n = pride_nranks(ctx), me = pride_rank(ctx), st = PRIDE_OK;
    size_t bytes = count * sizeof(uint32_t);
    uint32_t *bufs = malloc((size_t)(n + 1) * (bytes ? bytes : 1));
    struct pride_xfer *x = calloc(2 * (size_t)n, sizeof *x);
    struct pride_xfer **xs = calloc(2 * (size_t)n, sizeof *xs);
    if (!bufs || !x || !xs) {
        st = PRIDE_ERR_NOMEM;
        goto out;
    }
    for (int round = 0; round < rounds && st == PRIDE_OK; round++) {
        uint32_t *mine = bufs + (size_t)n * count;
        for (size_t i = 0; i < count; i++)
            mine[i] = rel_word(me, round, i);
        struct coll c;
        st = coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, count, -1);
        if (st)
            break;
        for (int p = 0; p < n; p++) {
            xs[2 * p] = xs[2 * p + 1] = NULL;
            if (p == me)
                continue;
            st = coll_irecv(&c, &x[2 * p], p, 0, bufs + (size_t)p * count, bytes);
            if (st)
                break;
            xs[2 * p] = &x[2 * p];
        }
        for (int p = 0; p < n && st == PRIDE_OK; p++) {
            if (p == me)
                continue;
            st = coll_isend(&c, &x[2 * p + 1], p, 0, mine, bytes);
            xs[2 * p + 1] = &x[2 * p + 1];
        }
        if (st == PRIDE_OK)
            st = coll_wait(&c, xs, 2 * n);
        st = coll_end(&c, st);
        if (st)
            break;
        for (size_t i = 0; i < count && st == PRIDE_OK; i++) {
            uint32_t sum = mine[i], want = 0;
            for (int p = 0; p < n; p++) {
                want += rel_word(p, round, i);
                if (p != me)
                    sum += bufs[(size_t)p * count + i];
            }
            if (sum != want)
                st = REL_WRONG;
        }
    }
out:
    free(bufs);
    free(x);
    free(xs);
    return st;
}

#endif
