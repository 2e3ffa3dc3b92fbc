/*
 * Helpers shared by the optimizer tests: build a configuration in one line, create an
 * optimizer or die, compare floats, and check inside rank processes that every rank
 * holds the same bytes.
 */
#ifndef PRIDE_OPTIMTEST_H
#define PRIDE_OPTIMTEST_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "optim.h"

static inline pride_optim_config_t optimtest_config(const char *algo, const char *quant,
                                                    const char *sync, float lr, float wd)
{
    pride_optim_config_t c = PRIDE_OPTIM_CONFIG_INIT;
    c.algorithm = algo;
    c.quant = quant;
    c.momentum_sync = sync;
    c.lr = lr;
    c.wd = wd;
    return c;
}

/* Inside a rank process: |got - want| <= tol for n values, else report and exit. */
#define HCHECK_NEAR(got, want, n, tol)                                                     \
    do {                                                                                   \
        for (size_t i_ = 0; i_ < (size_t)(n); i_++) {                                      \
            if (!(fabs((double)(got)[i_] - (double)(want)[i_]) <= (tol))) {                \
                fprintf(stderr, "%s:%d: element %zu is %.9g, want %.9g\n", __FILE__,       \
                        __LINE__, i_, (double)(got)[i_], (double)(want)[i_]);              \
                fflush(stderr);                                                            \
                _exit(1);                                                                  \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* Inside a rank process: 1 if len bytes at p are the same on every rank. */
static inline int optimtest_same_everywhere(pride_context_t *ctx, const void *p, size_t len)
{
    int P = pride_nranks(ctx);
    size_t words = (len + 3) / 4;
    uint32_t *mine = calloc(words, 4), *all = calloc(words * (size_t)P, 4);
    HCHECK(mine && all);
    memcpy(mine, p, len);
    HCHECK_OK(ctx, pride_allgather(ctx, mine, all, words, PRIDE_UINT32));
    int same = 1;
    for (int r = 0; r < P; r++)
        same &= memcmp(all + (size_t)r * words, mine, words * 4) == 0;
    free(mine);
    free(all);
    return same;
}

#endif
