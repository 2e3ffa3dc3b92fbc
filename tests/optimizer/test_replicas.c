/*
 * Replicas stay bit-identical: for every distributed algorithm (and every Lion Cub
 * quantizer and momentum schedule), 20 steps with gradients that differ between ranks
 * leave exactly the same parameter bytes on every rank, compared with an allgather.
 * The parameters must also have moved, elements outside every tensor must not have,
 * and ranks that disagree at creation are refused on every rank.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "optimtest.h"

struct variant {
    const char *algo, *quant, *sync;
    pride_tie_t tie;
};

static const struct variant variants[] = {
    {"global-lion", NULL, NULL, PRIDE_TIE_ALTERNATE},
    {"global-adamw", NULL, NULL, PRIDE_TIE_ALTERNATE},
    {"dlion-mavo", NULL, NULL, PRIDE_TIE_ALTERNATE},
    {"dlion-mavo", NULL, NULL, PRIDE_TIE_NEGATIVE},
    {"dlion-avg", NULL, NULL, PRIDE_TIE_ALTERNATE},
    {"lioncub", "sign1", "never", PRIDE_TIE_POSITIVE},
    {"lioncub", "sign1", "exp:2", PRIDE_TIE_ALTERNATE},
    {"lioncub", "sign1", "selective", PRIDE_TIE_ALTERNATE},
    {"lioncub", "l1", NULL, PRIDE_TIE_ALTERNATE},
    {"lioncub", "l1", "every:3", PRIDE_TIE_ALTERNATE},
    {"lioncub", "l1", "selective:0.5", PRIDE_TIE_ALTERNATE},
    {"lioncub", "l1-ternary", "exp", PRIDE_TIE_ALTERNATE},
};

/* Three tensors of awkward sizes with a gap of 5 elements no tensor covers. */
#define NPARAMS 1212
static const pride_tensor_t layout[3] = {
    {"fc.weight", 0, 1000}, {"fc.bias", 1000, 77}, {"out.weight", 1082, 130}};

static int run_variants(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P, (void)arg;
    float *x = malloc(NPARAMS * sizeof *x), *x0 = malloc(NPARAMS * sizeof *x0);
    float *g = malloc(NPARAMS * sizeof *g);
    HCHECK(x && x0 && g);
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        const struct variant *var = &variants[v];
        uint64_t init = 1234;
        for (size_t i = 0; i < NPARAMS; i++)
            x0[i] = x[i] = (float)(harness_rand(&init) % 2001) / 1000.0f - 1.0f;
        pride_optim_config_t c = optimtest_config(var->algo, var->quant, var->sync, 0.003f, 0.1f);
        c.tie = var->tie;
        c.seed = 42;
        pride_optim_t *o = NULL;
        HCHECK_OK(ctx, pride_optim_create(ctx, &c, x, NPARAMS, layout, 3, &o));
        uint64_t rs = 1000 * (uint64_t)rank + v;
        for (int step = 0; step < 20; step++) {
            for (size_t i = 0; i < NPARAMS; i++)
                g[i] = x[i] * 0.5f + (float)(harness_rand(&rs) % 2001) / 500.0f - 2.0f;
            g[rank] = 0; /* exact zeros somewhere, different on each rank */
            HCHECK_OK(ctx, pride_optim_step(o, g));
        }
        if (!optimtest_same_everywhere(ctx, x, NPARAMS * sizeof *x)) {
            fprintf(stderr, "rank %d: %s %s %s: replicas differ after 20 steps\n", rank,
                    var->algo, var->quant ? var->quant : "", var->sync ? var->sync : "");
            _exit(1);
        }
        size_t moved = 0;
        for (size_t i = 0; i < NPARAMS; i++)
            moved += x[i] != x0[i];
        HCHECK(moved > NPARAMS / 2);
        for (size_t i = 1077; i < 1082; i++)
            HCHECK(x[i] == x0[i]);
        pride_optim_stats_t s = PRIDE_OPTIM_STATS_INIT;
        HCHECK_OK(ctx, pride_optim_stats(o, &s));
        HCHECK(s.steps == 20 && s.bytes_sent > 0 && s.comm_s >= 0 && s.compute_s >= 0);
        HCHECK_OK(ctx, pride_optim_destroy(o));
    }
    free(x);
    free(x0);
    free(g);
    return 0;
}

static void test_replicas_4(void **state)
{
    (void)state;
    assert_int_equal(harness_run(4, run_variants, NULL, NULL), 0);
}

static void test_replicas_3(void **state)
{
    (void)state;
    assert_int_equal(harness_run(3, run_variants, NULL, NULL), 0);
}

/* Ranks that pass different settings or different initial parameters all get INVALID
   with the reason, instead of drifting apart or mismatching later. */
static int run_disagree(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P;
    int what = *(int *)arg;
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    pride_tensor_t t = {"w", 0, 8};
    pride_optim_config_t c = optimtest_config("dlion-mavo", NULL, NULL, 0.01f, 0);
    if (what == 0 && rank == 1)
        c.lr = 0.02f;
    if (what == 1 && rank == 2)
        x[3] = 4.5f;
    if (what == 2 && rank == 0)
        t.count = 7;
    pride_optim_t *o = NULL;
    int st = pride_optim_create(ctx, &c, x, 8, &t, 1, &o);
    HCHECK(st == PRIDE_ERR_INVALID && o == NULL);
    HCHECK(strstr(pride_last_error(ctx), what == 1 ? "different parameters" : "disagree"));
    return 0;
}

static void test_disagree(void **state)
{
    (void)state;
    for (int what = 0; what < 3; what++)
        assert_int_equal(harness_run(3, run_disagree, &what, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replicas_4),
        cmocka_unit_test(test_replicas_3),
        cmocka_unit_test(test_disagree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
