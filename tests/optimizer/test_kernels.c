/*
 * The optimizer's element-wise passes (optimizer/kernels.c): every path this CPU runs
 * gives the portable loops' results bit for bit (the Lion rule, weights, momentum,
 * sign bits, levels and the l1 sum), on ranges that start and end off the 64-element words and the
 * 16-element vectors, with zeros, negative zeros, huge, subnormal and non-finite
 * values among ordinary ones; and the fused l1 pass equals quantize-then-advance.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "reduce_kernels_impl.h"

#define KN 1000

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    switch (rng % 23) {
    case 0:
        return 0.0f;
    case 1:
        return -0.0f;
    case 2:
        return 1e30f;
    case 3:
        return -3e-39f; /* subnormal */
    case 4:
        return (rng >> 8) % 7 == 0 ? NAN : 1.0f;
    case 5:
        return (rng >> 8) % 5 == 0 ? -INFINITY : -1.0f;
    default:
        return (float)((double)(rng >> 11) * 0x1p-53 * 2 - 1) * 0.01f;
    }
}

static void fill(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = frand();
}

static void same_bytes(const void *a, const void *b, size_t len, const char *what, int path,
                       size_t off, size_t n)
{
    if (memcmp(a, b, len))
        fail_msg("path %s: %s differs from the portable result (off %zu, count %zu)",
                 pride_kpath_name((pride_kpath_t)path), what, off, n);
}

static void test_paths_match_portable(void **state)
{
    (void)state;
    const struct optim_kernels *ref = optim_kernels_path(PRIDE_KPATH_PORTABLE);
    assert_non_null(ref);
    static const size_t ranges[][2] = {{0, KN},    {0, 64}, {3, 61}, {5, 200}, {64, 17},
                                       {127, 530}, {1, 0},  {0, 15}, {960, 40}};
    float *m0 = malloc(KN * sizeof(float)), *g = malloc(KN * sizeof(float));
    float *x0 = malloc(KN * sizeof(float));
    float *ma = malloc(KN * sizeof(float)), *mb = malloc(KN * sizeof(float));
    float *xa = malloc(KN * sizeof(float)), *xb = malloc(KN * sizeof(float));
    int8_t *qa = malloc(KN), *qb = malloc(KN);
    uint64_t ba[KN / 64 + 1], bb[KN / 64 + 1];
    assert_true(m0 && g && x0 && ma && mb && xa && xb && qa && qb);
    int checked = 0;
    for (int path = 0; path < PRIDE_KPATH_COUNT; path++) {
        const struct optim_kernels *k = optim_kernels_path(path);
        if (!k) {
            printf("optimizer kernels: path %s cannot run on this CPU, not checked\n",
                   pride_kpath_name((pride_kpath_t)path));
            continue;
        }
        checked++;
        for (int round = 0; round < 20; round++) {
            fill(m0, KN);
            fill(g, KN);
            fill(x0, KN);
            for (size_t r = 0; r < sizeof ranges / sizeof *ranges; r++) {
                size_t off = ranges[r][0], n = ranges[r][1];
                /* the one-process rule */
                memcpy(ma, m0, KN * sizeof *ma);
                memcpy(mb, m0, KN * sizeof *mb);
                memcpy(xa, x0, KN * sizeof *xa);
                memcpy(xb, x0, KN * sizeof *xb);
                ref->rule(xa + off, ma + off, g + off, n, 1e-3f, 0.1f, 0.9f, 0.99f);
                k->rule(xb + off, mb + off, g + off, n, 1e-3f, 0.1f, 0.9f, 0.99f);
                same_bytes(xa, xb, KN * sizeof *xa, "rule: weights", path, off, n);
                same_bytes(ma, mb, KN * sizeof *ma, "rule: momentum", path, off, n);
                /* sign bits and momentum */
                memcpy(ma, m0, KN * sizeof *ma);
                memcpy(mb, m0, KN * sizeof *mb);
                memset(ba, 0, sizeof ba);
                memset(bb, 0, sizeof bb);
                ref->pack(ma, g, ba, off, n, 0.9f, 0.99f);
                k->pack(mb, g, bb, off, n, 0.9f, 0.99f);
                same_bytes(ma, mb, KN * sizeof *ma, "pack: momentum", path, off, n);
                same_bytes(ba, bb, sizeof ba, "pack: sign bits", path, off, n);
                /* voted signs onto the weights (bits of all kinds) */
                for (size_t w = 0; w < KN / 64 + 1; w++) {
                    rng = rng * 6364136223846793005ULL + 1;
                    ba[w] = rng ^ (rng >> 17);
                }
                memcpy(xa, x0, KN * sizeof *xa);
                memcpy(xb, x0, KN * sizeof *xb);
                ref->apply_bits(xa, ba, off, n, 1e-3f, 0.1f);
                k->apply_bits(xb, ba, off, n, 1e-3f, 0.1f);
                same_bytes(xa, xb, KN * sizeof *xa, "apply_bits: weights", path, off, n);
                /* the l1 sum and levels, with and without the momentum update */
                double sa = ref->abs_sum(m0 + off, g + off, n, 0.9f);
                double sb = k->abs_sum(m0 + off, g + off, n, 0.9f);
                same_bytes(&sa, &sb, sizeof sa, "abs_sum", path, off, n);
                for (int s = 1; s <= 127; s += 30) {
                    for (int adv = 0; adv < 2; adv++) {
                        memcpy(ma, m0, KN * sizeof *ma);
                        memcpy(mb, m0, KN * sizeof *mb);
                        float mean = n ? (float)(sa / (double)n) : 1.0f;
                        if (!(mean > 0) || !isfinite(mean))
                            mean = 0.004f;
                        ref->quantize(ma + off, g + off, n, 0.9f, 0.99f, adv, mean, 0.5f * (float)s,
                                      s, qa + off);
                        k->quantize(mb + off, g + off, n, 0.9f, 0.99f, adv, mean, 0.5f * (float)s,
                                    s, qb + off);
                        same_bytes(ma + off, mb + off, n * sizeof *ma, "quantize: momentum", path,
                                   off, n);
                        same_bytes(qa + off, qb + off, n, "quantize: levels", path, off, n);
                    }
                }
                memcpy(xa, x0, KN * sizeof *xa);
                memcpy(xb, x0, KN * sizeof *xb);
                ref->apply_levels(xa + off, qa + off, n, 1e-3f, 0.1f);
                k->apply_levels(xb + off, qa + off, n, 1e-3f, 0.1f);
                same_bytes(xa, xb, KN * sizeof *xa, "apply_levels: weights", path, off, n);
            }
        }
    }
    assert_true(checked >= 1);
    free(m0);
    free(g);
    free(x0);
    free(ma);
    free(mb);
    free(xa);
    free(xb);
    free(qa);
    free(qb);
}

/* The fused pass gives the levels of lioncub_quantize_l1 and the momentum of
   m = b2*m + (1-b2)*g, element for element. */
static void test_fused_l1(void **state)
{
    (void)state;
    float *m = malloc(KN * sizeof(float)), *g = malloc(KN * sizeof(float));
    float *m2 = malloc(KN * sizeof(float));
    int8_t *qa = malloc(KN), *qb = malloc(KN);
    assert_true(m && g && m2 && qa && qb);
    for (int round = 0; round < 50; round++) {
        size_t n = KN - (size_t)round * 7;
        fill(m, n);
        fill(g, n);
        if (round == 1) /* all-zero direction: no levels, the momentum still moves */
            for (size_t i = 0; i < n; i++)
                m[i] = g[i] = 0;
        memcpy(m2, m, n * sizeof *m);
        lioncub_quantize_l1(m, g, n, 0.9f, 31, qa);
        lioncub_quantize_l1_advance(optim_kernels(), m2, g, n, 0.9f, 0.99f, 31, qb);
        assert_memory_equal(qa, qb, n);
        for (size_t i = 0; i < n; i++) {
            float want = 0.99f * m[i] + (1.0f - 0.99f) * g[i];
            if (memcmp(&want, &m2[i], sizeof want))
                fail_msg("round %d: momentum %zu is %a, want %a", round, i, (double)m2[i],
                         (double)want);
        }
    }
    free(m);
    free(g);
    free(m2);
    free(qa);
    free(qb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_match_portable),
        cmocka_unit_test(test_fused_l1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
