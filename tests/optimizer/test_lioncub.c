/*
 * Lion Cub's pieces on their own: the int8 bound of the quantizers for every rank count
 * up to 127 under worst-case inputs, the momentum-sync schedules step by step, and
 * selective sync choosing the tensors whose momentum disagrees across 4 ranks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "optimtest.h"

#define QN 1000

/* Inputs that push the quantizer to its edges: one huge element among zeros (c / mean|c|
   = n), a single element, all equal, alternating signs, infinities and NaN, values near
   FLT_MAX whose sum overflows a float, denormals. */
static size_t worst_case(int which, float *g)
{
    for (size_t i = 0; i < QN; i++)
        g[i] = 0;
    switch (which) {
    case 0:
        g[7] = 1e30f;
        return QN;
    case 1:
        g[0] = -3;
        return 1;
    case 2:
        for (size_t i = 0; i < QN; i++)
            g[i] = 2.5f;
        return QN;
    case 3:
        for (size_t i = 0; i < QN; i++)
            g[i] = i % 2 ? -1e-3f : 7e5f;
        return QN;
    case 4:
        g[1] = INFINITY;
        g[2] = -INFINITY;
        g[3] = NAN;
        g[4] = 1;
        g[5] = -1e-20f;
        return QN;
    case 5:
        for (size_t i = 0; i < QN; i++)
            g[i] = i % 3 ? 3.4e38f : -3.4e38f;
        return QN;
    default:
        for (size_t i = 0; i < QN; i++)
            g[i] = (i % 2 ? -1 : 1) * 1e-44f;
        return QN;
    }
}

static void test_int8_bound(void **state)
{
    (void)state;
    float *g = malloc(QN * sizeof *g), *m = calloc(QN, sizeof *m);
    int8_t *q = malloc(QN);
    assert_non_null(g);
    assert_non_null(m);
    assert_non_null(q);
    for (int N = 1; N <= 127; N++) {
        for (int quant = OPTIM_QUANT_L1; quant <= OPTIM_QUANT_L1_TERNARY; quant++) {
            int s = lioncub_levels((enum optim_quant)quant, N);
            assert_true(s >= 1);
            assert_true(N * s <= 127);
            if (quant == OPTIM_QUANT_L1)
                assert_int_equal(s, 127 / N);
            for (int which = 0; which < 7; which++) {
                size_t n = worst_case(which, g);
                lioncub_quantize_l1(m, g, n, 0.9f, s, q);
                int most = 0, least = 0, hit_edge = 0;
                for (size_t i = 0; i < n; i++) {
                    most = q[i] > most ? q[i] : most;
                    least = q[i] < least ? q[i] : least;
                    hit_edge |= q[i] == s || q[i] == -s;
                }
                assert_true(most <= s && least >= -s);
                /* N ranks all at the edge still sum inside int8 */
                assert_true(N * most <= 127 && N * least >= -127);
                if (which == 0)
                    assert_true(hit_edge);
                if (which == 1) /* alone, c / mean|c| = -1: -s/2, rounded away from 0 */
                    assert_int_equal(q[0], -(s + 1) / 2);
            }
            /* the lone huge element maps to +s, the rest to 0 */
            worst_case(0, g);
            lioncub_quantize_l1(m, g, QN, 0.9f, s, q);
            assert_int_equal(q[7], s);
            assert_int_equal(q[8], 0);
            /* non-finite c gives 0, finite neighbours still quantize */
            worst_case(4, g);
            lioncub_quantize_l1(m, g, QN, 0.9f, s, q);
            assert_int_equal(q[1], 0);
            assert_int_equal(q[2], 0);
            assert_int_equal(q[3], 0);
            assert_int_equal(q[4], s);
        }
    }
    assert_int_equal(lioncub_levels(OPTIM_QUANT_L1, 128), 0);
    assert_int_equal(lioncub_levels(OPTIM_QUANT_L1_TERNARY, 128), 0);
    assert_int_equal(lioncub_levels(OPTIM_QUANT_L1, 4), 31);
    assert_int_equal(lioncub_levels(OPTIM_QUANT_L1, 8), 15);
    free(g);
    free(m);
    free(q);
}

static struct pride_optim *schedule(const char *spec)
{
    struct pride_optim *o = calloc(1, sizeof *o);
    assert_non_null(o);
    char why[256];
    assert_int_equal(lioncub_parse_sync(o, spec, why, sizeof why), PRIDE_OK);
    lioncub_schedule_seek(o, 0);
    return o;
}

/* The steps in [0, limit) at which the schedule syncs, written to due. */
static size_t due_steps(struct pride_optim *o, uint64_t from, uint64_t limit, uint64_t *due)
{
    size_t n = 0;
    for (uint64_t t = from; t < limit; t++)
        if (lioncub_sync_due(o, t))
            due[n++] = t;
    return n;
}

static void test_schedules(void **state)
{
    (void)state;
    uint64_t due[64];
    struct pride_optim *o = schedule("every:3");
    assert_string_equal(o->sync_spec, "every:3");
    assert_int_equal(due_steps(o, 0, 10, due), 4);
    assert_true(due[0] == 0 && due[1] == 3 && due[2] == 6 && due[3] == 9);
    free(o);

    /* exp:1: gaps ceil(2^j) = 1, 2, 4, 8, 16 */
    o = schedule("exp:1");
    const uint64_t e1[] = {0, 1, 3, 7, 15, 31};
    assert_int_equal(due_steps(o, 0, 40, due), 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(due[i], e1[i]);
    /* resuming at step 8 (a checkpoint) finds 15 next */
    lioncub_schedule_seek(o, 8);
    assert_int_equal(due_steps(o, 8, 40, due), 2);
    assert_int_equal(due[0], 15);
    free(o);

    /* exp (k = 16): gap 1, then ceil(2^(j/16)) = 2 for j = 1..16, then 3 for a while */
    o = schedule("exp");
    assert_string_equal(o->sync_spec, "exp:16");
    size_t n = due_steps(o, 0, 40, due);
    assert_int_equal(n, 20);
    assert_int_equal(due[0], 0);
    assert_int_equal(due[1], 1);
    for (size_t j = 2; j <= 17; j++)
        assert_int_equal(due[j], 1 + 2 * (j - 1));
    assert_int_equal(due[18], 36); /* ceil(2^(17/16)) = 3 */
    assert_int_equal(due[19], 39);
    free(o);

    o = schedule("never");
    assert_int_equal(due_steps(o, 0, 40, due), 0);
    free(o);

    o = schedule("selective");
    assert_true(o->sync == OPTIM_SYNC_SELECTIVE && o->sync_fraction == 0.25f);
    free(o);
    o = schedule("selective:0.5");
    assert_true(o->sync_fraction == 0.5f);
    free(o);

    const char *bad[] = {"every:0", "every:", "every:x", "every:3x", "exp:", "exp:0",
                         "exp:-1", "selective:0", "selective:1.5", "selective:", "sometimes",
                         "every", "selective:nan"};
    struct pride_optim p;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[256] = "";
        memset(&p, 0, sizeof p);
        assert_int_equal(lioncub_parse_sync(&p, bad[i], why, sizeof why), PRIDE_ERR_INVALID);
        assert_non_null(strstr(why, bad[i]));
    }
}

/* Selective on 4 ranks with three tensors: "same" gets the same gradient everywhere
   (its momentum never differs: never synced), "small" differs a little between ranks,
   "big" a lot. selective:0.3 syncs ceil(0.9) = 1 tensor per step: "big", whose momentum
   is then the same on every rank while "small"'s is not; selective:1 syncs both that
   differ, never "same". The update itself is the sign1 vote, identical everywhere. */
static int run_selective(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P;
    const char *spec = arg;
    enum { A = 100, B = 300, C = 200 };
    float x[A + B + C], g[A + B + C];
    for (size_t i = 0; i < A + B + C; i++)
        x[i] = 0.01f * (float)(i % 17);
    pride_tensor_t t[3] = {{"same", 0, A}, {"small", A, B}, {"big", A + B, C}};
    pride_optim_config_t c = optimtest_config("lioncub", "sign1", spec, 0.01f, 0);
    c.seed = 7;
    pride_optim_t *o = NULL;
    HCHECK_OK(ctx, pride_optim_create(ctx, &c, x, A + B + C, t, 3, &o));
    uint64_t rs = 99 + (uint64_t)rank;
    for (int step = 0; step < 5; step++) {
        for (size_t i = 0; i < A + B + C; i++) {
            float noise = (float)(harness_rand(&rs) % 2001) / 1000.0f - 1.0f;
            g[i] = i < A ? 0.5f : i < A + B ? 0.5f + 0.1f * noise : 0.5f + 10.0f * noise;
        }
        HCHECK_OK(ctx, pride_optim_step(o, g));
        pride_optim_stats_t s = PRIDE_OPTIM_STATS_INIT;
        HCHECK_OK(ctx, pride_optim_stats(o, &s));
        int all = !strcmp(spec, "selective:1");
        HCHECK(s.last_momentum_syncs == (all ? 2u : 1u));
        HCHECK(optimtest_same_everywhere(ctx, o->m + A + B, C * sizeof(float)));
        HCHECK(optimtest_same_everywhere(ctx, o->m + A, B * sizeof(float)) == all);
        HCHECK(optimtest_same_everywhere(ctx, o->m, A * sizeof(float)));
        HCHECK(optimtest_same_everywhere(ctx, x, sizeof x));
    }
    pride_optim_stats_t s = PRIDE_OPTIM_STATS_INIT;
    HCHECK_OK(ctx, pride_optim_stats(o, &s));
    HCHECK(s.momentum_sync_elements == (!strcmp(spec, "selective:1") ? 5u * (B + C) : 5u * C));
    pride_optim_destroy(o);
    return 0;
}

static void test_selective(void **state)
{
    (void)state;
    assert_int_equal(harness_run(4, run_selective, "selective:0.3", NULL), 0);
    assert_int_equal(harness_run(4, run_selective, "selective:1", NULL), 0);
}

/* every:2 on 4 ranks: momentum is the same everywhere right after steps 0 and 2, and
   differs after step 1. */
static int run_every(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P, (void)arg;
    float x[64] = {0}, g[64];
    pride_tensor_t t[2] = {{"a", 0, 40}, {"b", 40, 24}};
    pride_optim_config_t c = optimtest_config("lioncub", "l1", "every:2", 0.01f, 0.1f);
    pride_optim_t *o = NULL;
    HCHECK_OK(ctx, pride_optim_create(ctx, &c, x, 64, t, 2, &o));
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < 64; i++)
            g[i] = sinf((float)(i * (rank + 1) + step));
        HCHECK_OK(ctx, pride_optim_step(o, g));
        HCHECK(optimtest_same_everywhere(ctx, o->m, sizeof x) == (step % 2 == 0));
    }
    pride_optim_stats_t s = PRIDE_OPTIM_STATS_INIT;
    HCHECK_OK(ctx, pride_optim_stats(o, &s));
    HCHECK(s.momentum_syncs == 4 && s.momentum_sync_elements == 128);
    pride_optim_destroy(o);
    return 0;
}

static void test_every(void **state)
{
    (void)state;
    assert_int_equal(harness_run(4, run_every, NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int8_bound),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_selective),
        cmocka_unit_test(test_every),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
