/*
 * Every update rule against steps worked out by hand (ALGORITHMS.md), on tensors of a
 * few elements: one-process Lion and AdamW on one rank; Global Lion / AdamW, D-Lion
 * MaVo and Avg, and Lion Cub's l1, l1-ternary and sign1 with momentum sync on 4 ranks.
 * The expected numbers are in the comments next to them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "optimtest.h"

static pride_optim_t *make(pride_context_t *ctx, const pride_optim_config_t *c, float *x,
                           size_t n)
{
    pride_tensor_t t = {"w", 0, n};
    pride_optim_t *o = NULL;
    HCHECK_OK(ctx, pride_optim_create(ctx, c, x, n, &t, 1, &o));
    return o;
}

/* Lion, lr 0.1, wd 0.5, betas 0.9 / 0.99, x = [1, -2, 0.5, 0].
   Step 1, g = [0.5, -1, 0, 2]: m = 0 so c = 0.1 g, sign(c) = [1, -1, 0, 1];
     x * (1 - 0.05) = [0.95, -1.9, 0.475, 0]; minus 0.1 sign(c) = [0.85, -1.8, 0.475, -0.1];
     m = 0.01 g = [0.005, -0.01, 0, 0.02].
   Step 2, g = [-1, -1, 1, -0.17]: c = 0.9 m + 0.1 g = [-0.0955, -0.109, 0.1, 0.001]
     (with the old m; the momentum moved first, 0.9 * 0.0179 - 0.017, would flip the last
     sign), sign = [-1, -1, 1, 1];
     x * 0.95 = [0.8075, -1.71, 0.45125, -0.095];
     minus 0.1 sign = [0.9075, -1.61, 0.35125, -0.195]. */
static int run_lion(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)rank, (void)P, (void)arg;
    float x[4] = {1, -2, 0.5f, 0};
    pride_optim_config_t c = optimtest_config("lion", NULL, NULL, 0.1f, 0.5f);
    pride_optim_t *o = make(ctx, &c, x, 4);
    const float g1[4] = {0.5f, -1, 0, 2}, g2[4] = {-1, -1, 1, -0.17f};
    const float x1[4] = {0.85f, -1.8f, 0.475f, -0.1f}, x2[4] = {0.9075f, -1.61f, 0.35125f, -0.195f};
    const float m1[4] = {0.005f, -0.01f, 0, 0.02f};
    HCHECK_OK(ctx, pride_optim_step(o, g1));
    HCHECK_NEAR(x, x1, 4, 1e-6);
    HCHECK_NEAR(o->m, m1, 4, 1e-7);
    HCHECK_OK(ctx, pride_optim_step(o, g2));
    HCHECK_NEAR(x, x2, 4, 1e-6);
    pride_optim_stats_t s = PRIDE_OPTIM_STATS_INIT;
    HCHECK_OK(ctx, pride_optim_stats(o, &s));
    HCHECK(s.steps == 2 && s.bytes_sent == 0 && s.momentum_syncs == 0);
    pride_optim_destroy(o);
    return 0;
}

/* AdamW, lr 0.1, wd 0.1, betas 0.9 / 0.999, eps 1e-8, x = [1, -1].
   Step 1, g = [0.5, -2]: m = 0.1 g, v = 0.001 g^2, so m^ = g, v^ = g^2 and the step is
     sign(g): x = 0.99 x - 0.1 [1, -1] = [0.89, -0.89].
   Step 2, g = [0.5, 0]: m = [0.095, -0.18], v = [0.00049975, 0.003996];
     m^ = m / 0.19 = [0.5, -0.947368], v^ = v / 0.001999 = [0.25, 1.998999];
     m^ / sqrt(v^) = [1, -0.670055]; x = 0.99 x - 0.1 that = [0.7811, -0.8140942]. */
static int run_adamw(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)rank, (void)P, (void)arg;
    float x[2] = {1, -1};
    pride_optim_config_t c = optimtest_config("adamw", NULL, NULL, 0.1f, 0.1f);
    pride_optim_t *o = make(ctx, &c, x, 2);
    const float g1[2] = {0.5f, -2}, g2[2] = {0.5f, 0};
    const float x1[2] = {0.89f, -0.89f}, x2[2] = {0.7811f, -0.8140942f};
    HCHECK_OK(ctx, pride_optim_step(o, g1));
    HCHECK_NEAR(x, x1, 2, 1e-6);
    HCHECK_OK(ctx, pride_optim_step(o, g2));
    HCHECK_NEAR(x, x2, 2, 2e-6);
    pride_optim_destroy(o);
    return 0;
}

/* Global Lion on 4 ranks, lr 0.1, wd 0: rank r has g = [r, -r, 1 - r, 0.5], whose average
   is [1.5, -1.5, -0.5, 0.5]; from x = 0 one step gives -0.1 sign = [-0.1, 0.1, 0.1, -0.1]
   on every rank, and a second step with the same gradients (c = 0.9 * 0.01 avg + 0.1 avg,
   same signs) doubles it. Rank 0's own gradient alone would give [0, 0, -0.1, -0.1]. */
static int run_global_lion(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P, (void)arg;
    float x[4] = {0};
    pride_optim_config_t c = optimtest_config("global-lion", NULL, NULL, 0.1f, 0);
    pride_optim_t *o = make(ctx, &c, x, 4);
    float r = (float)rank, g[4] = {r, -r, 1 - r, 0.5f};
    const float x1[4] = {-0.1f, 0.1f, 0.1f, -0.1f}, x2[4] = {-0.2f, 0.2f, 0.2f, -0.2f};
    const float m1[4] = {0.015f, -0.015f, -0.005f, 0.005f};
    HCHECK_OK(ctx, pride_optim_step(o, g));
    HCHECK_NEAR(x, x1, 4, 1e-7);
    HCHECK_NEAR(o->m, m1, 4, 1e-7);
    HCHECK_OK(ctx, pride_optim_step(o, g));
    HCHECK_NEAR(x, x2, 4, 1e-7);
    pride_optim_stats_t s = PRIDE_OPTIM_STATS_INIT;
    HCHECK_OK(ctx, pride_optim_stats(o, &s));
    HCHECK(s.steps == 2 && s.bytes_sent > 0 && s.last_bytes_sent > 0);
    pride_optim_destroy(o);
    return 0;
}

/* Global AdamW on 4 ranks, lr 0.1, wd 0.1: the average gradient is [1.5, -0.5]
   (rank r: [r, 1 - r] ... r = 0..3 gives [1.5, -0.5]); the first AdamW step is the sign:
   x = 0.99 [1, 1] - 0.1 [1, -1] = [0.89, 1.09]. */
static int run_global_adamw(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P, (void)arg;
    float x[2] = {1, 1};
    pride_optim_config_t c = optimtest_config("global-adamw", NULL, NULL, 0.1f, 0.1f);
    pride_optim_t *o = make(ctx, &c, x, 2);
    float g[2] = {(float)rank, 1 - (float)rank};
    const float x1[2] = {0.89f, 1.09f};
    HCHECK_OK(ctx, pride_optim_step(o, g));
    HCHECK_NEAR(x, x1, 2, 1e-6);
    pride_optim_destroy(o);
    return 0;
}

/* Seven elements whose sign is positive on 4, 3, 2, 1, 0, 2, 0 of the 4 ranks (the last
   element's gradient is 0 everywhere: sign(0) packs as negative). */
static const int npos[7] = {4, 3, 2, 1, 0, 2, 0};

static void vote_grads(int rank, float *g)
{
    for (int e = 0; e < 7; e++)
        g[e] = e == 6 ? 0.0f : rank < npos[e] ? 1.0f : -1.0f;
}

/* D-Lion MaVo, lr 0.1, wd 0.5, x = 1: majority = [+, +, tie, -, -, tie, -]; ties go to
   ALTERNATE, which at step 0 sends even elements positive, odd ones negative:
   delta = [1, 1, 1, -1, -1, -1, -1]; x = 1 - 0.1 (delta + 0.5) = 0.85 for +1, 1.05 for -1.
   Step 1, the same gradients (c = 0.9 * 0.01 g + 0.1 g keeps the signs): the ties flip
   (element i positive when i + 1 is even), delta = [1, 1, -1, -1, -1, 1, -1], and
   x = 0.95 x - 0.1 delta = [0.7075, 0.7075, 0.9075, 1.0975, 1.0975, 0.8975, 1.0975]. */
static int run_dlion_mavo(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P, (void)arg;
    float x[7] = {1, 1, 1, 1, 1, 1, 1}, g[7];
    pride_optim_config_t c = optimtest_config("dlion-mavo", NULL, NULL, 0.1f, 0.5f);
    pride_optim_t *o = make(ctx, &c, x, 7);
    vote_grads(rank, g);
    const float want[7] = {0.85f, 0.85f, 0.85f, 1.05f, 1.05f, 1.05f, 1.05f};
    const float want2[7] = {0.7075f, 0.7075f, 0.9075f, 1.0975f, 1.0975f, 0.8975f, 1.0975f};
    HCHECK_OK(ctx, pride_optim_step(o, g));
    HCHECK_NEAR(x, want, 7, 1e-6);
    /* each rank keeps its own momentum: m = 0.01 g */
    for (int e = 0; e < 7; e++)
        HCHECK(fabsf(o->m[e] - 0.01f * g[e]) < 1e-8f);
    HCHECK_OK(ctx, pride_optim_step(o, g));
    HCHECK_NEAR(x, want2, 7, 1e-6);
    pride_optim_destroy(o);
    return 0;
}

/* D-Lion Avg, same votes: delta = (2 count - 4) / 4 = [1, 0.5, 0, -0.5, -1, 0, -1];
   x = 1 - 0.1 (delta + 0.5) = [0.85, 0.9, 0.95, 1, 1.05, 0.95, 1.05]. */
static int run_dlion_avg(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P, (void)arg;
    float x[7] = {1, 1, 1, 1, 1, 1, 1}, g[7];
    pride_optim_config_t c = optimtest_config("dlion-avg", NULL, NULL, 0.1f, 0.5f);
    pride_optim_t *o = make(ctx, &c, x, 7);
    vote_grads(rank, g);
    const float want[7] = {0.85f, 0.9f, 0.95f, 1.0f, 1.05f, 0.95f, 1.05f};
    HCHECK_OK(ctx, pride_optim_step(o, g));
    HCHECK_NEAR(x, want, 7, 1e-6);
    pride_optim_destroy(o);
    return 0;
}

/* Lion Cub l1 on 4 ranks, beta1 0 (so c = g), s = floor(127 / 4) = 31, q = clip(round(
   c / mean|c| * 15.5), -31, 31):
     rank 0 c = [1, 1, 1, 1]    mean 1    q = [16, 16, 16, 16]   (15.5 rounds away from 0)
     rank 1 c = [4, 0, 0, 0]    mean 1    q = [31, 0, 0, 0]      (62 clipped)
     rank 2 c = [-1, -1, 2, 0]  mean 1    q = [-16, -16, 31, 0]
     rank 3 c = [0, -2, -1, 3]  mean 1.5  q = [0, -21, -10, 31]  (-20.67, -10.33, 31)
   sum = [31, -21, 37, 47], direction [1, -1, 1, 1]; from x = 0, lr 0.1: [-0.1, 0.1, -0.1, -0.1].
   l1-ternary (s = 1, q = clip(round(c / mean|c| / 2), -1, 1)):
     rank 0 [1, 1, 1, 1], rank 1 [1, 0, 0, 0], rank 2 [-1, -1, 1, 0], rank 3 [0, -1, 0, 1]
   sum = [1, -1, 2, 2]: the same direction. A second tensor whose c is 0 on every rank
   quantizes to 0, sums to 0 and does not move (sign(0) = 0; wd is 0). */
static const float cub_c[4][4] = {
    {1, 1, 1, 1}, {4, 0, 0, 0}, {-1, -1, 2, 0}, {0, -2, -1, 3}};

static int run_lioncub(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P;
    const char *quant = arg;
    float x[6] = {0, 0, 0, 0, 0.5f, 0.5f}, g[6];
    memcpy(g, cub_c[rank], sizeof cub_c[rank]);
    g[4] = 0;
    g[5] = 0;
    pride_optim_config_t c = optimtest_config("lioncub", quant, NULL, 0.1f, 0);
    c.beta1 = 0;
    pride_tensor_t t[2] = {{"w", 0, 4}, {"zero", 4, 2}};
    pride_optim_t *o = NULL;
    HCHECK_OK(ctx, pride_optim_create(ctx, &c, x, 6, t, 2, &o));
    const int8_t q_l1[4][4] = {
        {16, 16, 16, 16}, {31, 0, 0, 0}, {-16, -16, 31, 0}, {0, -21, -10, 31}};
    const int8_t q_t[4][4] = {{1, 1, 1, 1}, {1, 0, 0, 0}, {-1, -1, 1, 0}, {0, -1, 0, 1}};
    int8_t q[4];
    int ternary = !strcmp(quant, "l1-ternary");
    float zero[4] = {0};
    lioncub_quantize_l1(zero, g, 4, 0, ternary ? 1 : 31, q);
    HCHECK(memcmp(q, ternary ? q_t[rank] : q_l1[rank], 4) == 0);
    HCHECK_OK(ctx, pride_optim_step(o, g));
    const float want[6] = {-0.1f, 0.1f, -0.1f, -0.1f, 0.5f, 0.5f};
    HCHECK_NEAR(x, want, 6, 1e-7);
    /* the levels that went on the wire were summed: the q buffer holds the sums */
    const int8_t sum_l1[4] = {31, -21, 37, 47}, sum_t[4] = {1, -1, 2, 2};
    HCHECK(memcmp(o->q, ternary ? sum_t : sum_l1, 4) == 0);
    pride_optim_destroy(o);
    return 0;
}

/* Lion Cub sign1 with momentum averaged every step, beta2 0.99: after one step each
   rank's momentum 0.01 g_r is replaced by the average 0.01 * mean(g); the update is the
   vote (as dlion-mavo). Rank r: g = [r - 1.5, 1] (average [0, 1]). Votes: element 0 is
   positive on ranks 2 and 3 only, a tie that ALTERNATE sends positive (element 0 is
   even); element 1 positive everywhere. x = 0 - 0.1 [1, 1]. */
static int run_sign1_sync(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P, (void)arg;
    float x[2] = {0, 0}, g[2] = {(float)rank - 1.5f, 1};
    pride_optim_config_t c = optimtest_config("lioncub", "sign1", "every:1", 0.1f, 0);
    pride_optim_t *o = make(ctx, &c, x, 2);
    HCHECK_OK(ctx, pride_optim_step(o, g));
    const float want[2] = {-0.1f, -0.1f}, m[2] = {0, 0.01f};
    HCHECK_NEAR(x, want, 2, 1e-7);
    HCHECK_NEAR(o->m, m, 2, 1e-8);
    pride_optim_stats_t s = PRIDE_OPTIM_STATS_INIT;
    HCHECK_OK(ctx, pride_optim_stats(o, &s));
    HCHECK(s.last_momentum_syncs == 1 && s.momentum_syncs == 1 && s.momentum_sync_elements == 2);
    pride_optim_destroy(o);
    return 0;
}

static void test_lion(void **s)
{
    (void)s;
    assert_int_equal(harness_run(1, run_lion, NULL, NULL), 0);
}
static void test_adamw(void **s)
{
    (void)s;
    assert_int_equal(harness_run(1, run_adamw, NULL, NULL), 0);
}
static void test_global_lion(void **s)
{
    (void)s;
    assert_int_equal(harness_run(4, run_global_lion, NULL, NULL), 0);
}
static void test_global_adamw(void **s)
{
    (void)s;
    assert_int_equal(harness_run(4, run_global_adamw, NULL, NULL), 0);
}
static void test_dlion_mavo(void **s)
{
    (void)s;
    assert_int_equal(harness_run(4, run_dlion_mavo, NULL, NULL), 0);
}
static void test_dlion_avg(void **s)
{
    (void)s;
    assert_int_equal(harness_run(4, run_dlion_avg, NULL, NULL), 0);
}
static void test_lioncub_l1(void **s)
{
    (void)s;
    assert_int_equal(harness_run(4, run_lioncub, "l1", NULL), 0);
}
static void test_lioncub_ternary(void **s)
{
    (void)s;
    assert_int_equal(harness_run(4, run_lioncub, "l1-ternary", NULL), 0);
}
static void test_lioncub_sign1_sync(void **s)
{
    (void)s;
    assert_int_equal(harness_run(4, run_sign1_sync, NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lion),          cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_global_lion),   cmocka_unit_test(test_global_adamw),
        cmocka_unit_test(test_dlion_mavo),    cmocka_unit_test(test_dlion_avg),
        cmocka_unit_test(test_lioncub_l1),    cmocka_unit_test(test_lioncub_ternary),
        cmocka_unit_test(test_lioncub_sign1_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
