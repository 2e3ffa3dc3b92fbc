/*
 * pride-demo: a short multi-rank tour, run as `pride-run -n 4 pride-demo`.
 * Each rank allreduces a float32 gradient, then votes on its signs and shows how
 * many bytes each way put on the wire.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pride/pride.h>

#define CHECK(ctx, expr)                                                                    \
    do {                                                                                    \
        int st_ = (expr);                                                                   \
        if (st_ != PRIDE_OK) {                                                              \
            fprintf(stderr, "pride-demo: %s: %s (%s)\n", #expr, pride_strerror(st_),        \
                    (ctx) ? pride_last_error(ctx) : "");                                    \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

int main(int argc, char **argv)
{
    size_t n = 1u << 22;
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: pride-run -n N pride-demo [ELEMENTS]\n"
               "Allreduce and sign-vote a float32 vector of ELEMENTS (default 4194304) and\n"
               "report the bytes each rank sent.\n");
        return 0;
    }
    if (argc > 1) {
        char *end;
        n = strtoul(argv[1], &end, 10);
        if (*end || n == 0) {
            fprintf(stderr, "pride-demo: ELEMENTS must be a positive number\n");
            return 2;
        }
    }
    pride_context_t *ctx = NULL;
    CHECK(ctx, pride_init(NULL, &ctx));
    int rank = pride_rank(ctx), P = pride_nranks(ctx);
    float *g = malloc(n * sizeof *g);
    uint64_t *bits = calloc((n + 63) / 64, sizeof *bits);
    if (!g || !bits) {
        fprintf(stderr, "pride-demo: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        g[i] = sinf((float)(i + 1) * (float)(rank + 1));
        if (g[i] > 0)
            bits[i / 64] |= UINT64_C(1) << (i % 64);
    }
    pride_stats_t s0 = PRIDE_STATS_INIT, s1 = PRIDE_STATS_INIT, s2 = PRIDE_STATS_INIT;
    CHECK(ctx, pride_get_stats(ctx, &s0));
    CHECK(ctx, pride_allreduce(ctx, g, g, n, PRIDE_FLOAT32, PRIDE_AVG));
    CHECK(ctx, pride_get_stats(ctx, &s1));
    CHECK(ctx, pride_vote(ctx, bits, bits, n, PRIDE_TIE_ALTERNATE));
    CHECK(ctx, pride_get_stats(ctx, &s2));
    size_t agree = 0;
    for (size_t i = 0; i < n; i++) {
        int vote = (int)(bits[i / 64] >> (i % 64) & 1);
        agree += vote == (g[i] > 0);
    }
    double ar = (double)(s1.bytes_sent - s0.bytes_sent), vt = (double)(s2.bytes_sent - s1.bytes_sent);
    printf("rank %d of %d: float32 allreduce sent %.0f bytes (%.2f bits/element), sign vote sent "
           "%.0f bytes (%.2f bits/element), %.1f%% of voted signs match the averaged gradient\n",
           rank, P, ar, ar * 8 / (double)n, vt, vt * 8 / (double)n, 100.0 * (double)agree / (double)n);
    CHECK(ctx, pride_barrier(ctx));
    free(g);
    free(bits);
    pride_finalize(ctx);
    return 0;
}
