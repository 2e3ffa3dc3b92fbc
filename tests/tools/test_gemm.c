/*
 * pride-train's matrix product (tools/train/gemm.c) against a plain triple loop in
 * double precision, on every kernel this CPU runs: all three stride patterns the
 * trainer uses (A B, A^T B, A B^T) and a general one, shapes that are and are not
 * multiples of the tiles and blocks (including ones past KC, NC and MC), with and
 * without accumulation into C, and nothing written outside C's M x N window.
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

#include "gemm.h"

static uint64_t rng = 88172645463325252ULL;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) * 0x1p-53 * 2 - 1);
}

/* One product of shape M x N x K with A stored as an M x K (ta = 0) or K x M matrix
   and B as K x N (tb = 0) or N x K; C has two guard columns and a guard row. */
static void check(struct gemm *g, size_t M, size_t N, size_t K, int ta, int tb, int accumulate)
{
    size_t ldc = N + 2;
    float *a = malloc((M * K + 1) * sizeof *a), *b = malloc((K * N + 1) * sizeof *b);
    float *c = malloc((M + 1) * ldc * sizeof *c);
    double *want = malloc((M * N + 1) * sizeof *want);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(want);
    for (size_t i = 0; i < M * K; i++)
        a[i] = frand();
    for (size_t i = 0; i < K * N; i++)
        b[i] = frand();
    for (size_t i = 0; i < (M + 1) * ldc; i++)
        c[i] = frand();
    size_t ars = ta ? 1 : K, acs = ta ? M : 1, brs = tb ? 1 : N, bcs = tb ? K : 1;
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double s = accumulate ? c[i * ldc + j] : 0;
            for (size_t k = 0; k < K; k++)
                s += (double)a[i * ars + k * acs] * b[k * brs + j * bcs];
            want[i * N + j] = s;
        }
    float *before = malloc((M + 1) * ldc * sizeof *before);
    assert_non_null(before);
    memcpy(before, c, (M + 1) * ldc * sizeof *c);
    gemm_run(g, M, N, K, a, ars, acs, b, brs, bcs, c, ldc, accumulate);
    for (size_t i = 0; i <= M; i++)
        for (size_t j = 0; j < ldc; j++) {
            float got = c[i * ldc + j];
            if (i == M || j >= N) {
                if (memcmp(&got, &before[i * ldc + j], sizeof got))
                    fail_msg("%s: %zux%zux%zu ta %d tb %d: C[%zu][%zu] outside the product "
                             "changed",
                             gemm_isa(g), M, N, K, ta, tb, i, j);
                continue;
            }
            double w = want[i * N + j], tol = 1e-5 * (double)(K + 1);
            if (!(fabs((double)got - w) <= tol))
                fail_msg("%s: %zux%zux%zu ta %d tb %d acc %d: C[%zu][%zu] = %.9g, want %.9g",
                         gemm_isa(g), M, N, K, ta, tb, accumulate, i, j, (double)got, w);
        }
    free(a);
    free(b);
    free(c);
    free(want);
    free(before);
}

static void test_kernels(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {
        {1, 1, 1},     {3, 5, 7},     {8, 32, 16},   {32, 2048, 17}, {32, 10, 300},
        {130, 70, 33}, {7, 513, 260}, {300, 40, 32}, {17, 33, 0},    {0, 5, 5},
    };
    const char *isas[] = {"generic", "avx2", "avx512"};
    int ran = 0;
    for (size_t i = 0; i < sizeof isas / sizeof *isas; i++) {
        struct gemm *g = gemm_create(isas[i]);
        if (!g) {
            printf("gemm: kernel %s cannot run on this CPU, not checked\n", isas[i]);
            continue;
        }
        assert_string_equal(gemm_isa(g), isas[i]);
        ran++;
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int t = 0; t < 4; t++)
                for (int acc = 0; acc < 2; acc++)
                    check(g, shapes[s][0], shapes[s][1], shapes[s][2], t & 1, t >> 1, acc);
        gemm_destroy(g);
    }
    assert_true(ran >= 1);
    struct gemm *best = gemm_create(NULL);
    assert_non_null(best);
    gemm_destroy(best);
    assert_null(gemm_create("sse9"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kernels)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
