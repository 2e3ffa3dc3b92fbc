/*
 * pride_optim_create refuses bad configurations and layouts with PRIDE_ERR_INVALID and
 * a sentence that names the problem: unknown names, out-of-range numbers, options that
 * do not apply to the algorithm, tensors that overlap or leave the buffer, and too
 * many ranks for an int8 sum (checked on a context that claims 128 ranks: the check
 * comes before any communication). NULL arguments are refused without a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "ctx.h"
#include "optimtest.h"

struct bad_case {
    const char *algo, *quant, *sync;
    float lr, wd, beta1, beta2, eps;
    const char *needle;
};

static const struct bad_case bad_cases[] = {
    {"sgd", NULL, NULL, 0.1f, 0, -1, -1, -1, "unknown algorithm 'sgd'"},
    {NULL, NULL, NULL, 0.1f, 0, -1, -1, -1, "no algorithm"},
    {"lioncub", "int4", NULL, 0.1f, 0, -1, -1, -1, "unknown quant 'int4'"},
    {"dlion-mavo", "l1", NULL, 0.1f, 0, -1, -1, -1, "applies to lioncub only"},
    {"global-lion", NULL, "every:4", 0.1f, 0, -1, -1, -1, "applies to lioncub only"},
    {"lioncub", "l1", "every:0", 0.1f, 0, -1, -1, -1, "every:K needs"},
    {"lioncub", "l1", "often", 0.1f, 0, -1, -1, -1, "unknown momentum_sync 'often'"},
    {"lion", NULL, NULL, 0, 0, -1, -1, -1, "lr must be"},
    {"lion", NULL, NULL, -1e-3f, 0, -1, -1, -1, "lr must be"},
    {"lion", NULL, NULL, NAN, 0, -1, -1, -1, "lr must be"},
    {"lion", NULL, NULL, INFINITY, 0, -1, -1, -1, "lr must be"},
    {"lion", NULL, NULL, 0.1f, -0.5f, -1, -1, -1, "wd must be"},
    {"lion", NULL, NULL, 0.1f, 0, 1.0f, -1, -1, "beta1 must be"},
    {"adamw", NULL, NULL, 0.1f, 0, -1, 1.5f, -1, "beta2 must be"},
    {"adamw", NULL, NULL, 0.1f, 0, -1, -1, 0, "eps must be"},
    {"lion", NULL, NULL, 0.1f, 0, NAN, -1, -1, "beta1 must be"},
};

static int run_bad(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)rank, (void)P, (void)arg;
    float x[16] = {0};
    pride_tensor_t t[2] = {{"a", 0, 8}, {"b", 8, 8}};
    pride_optim_t *o = NULL;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        pride_optim_config_t c = optimtest_config(b->algo, b->quant, b->sync, b->lr, b->wd);
        c.beta1 = b->beta1;
        c.beta2 = b->beta2;
        c.eps = b->eps;
        int st = pride_optim_create(ctx, &c, x, 16, t, 2, &o);
        if (st != PRIDE_ERR_INVALID || o || !strstr(pride_last_error(ctx), b->needle)) {
            fprintf(stderr, "case %zu: %s (%s), wanted INVALID with '%s'\n", i,
                    pride_strerror(st), pride_last_error(ctx), b->needle);
            return 1;
        }
    }

    /* layouts */
    pride_optim_config_t c = PRIDE_OPTIM_CONFIG_INIT;
    const struct {
        pride_tensor_t t[2];
        size_t nt;
        const char *needle;
    } layouts[] = {
        {{{"a", 0, 8}, {"b", 7, 8}}, 2, "overlap"},
        {{{"a", 8, 8}, {"b", 0, 9}}, 2, "overlap"},
        {{{"a", 0, 8}, {"b", 8, 9}}, 2, "not inside"},
        {{{"a", 0, 0}, {"b", 8, 8}}, 2, "empty"},
        {{{"a", 17, 1}, {"b", 0, 1}}, 2, "not inside"},
        {{{"a", SIZE_MAX, 2}, {"b", 0, 1}}, 2, "not inside"},
        {{{"a", 2, SIZE_MAX}, {"b", 0, 1}}, 2, "not inside"},
        {{{NULL, 0, 8}, {"b", 8, 8}}, 2, "has no name"},
        {{{"a", 0, 8}, {"b", 8, 8}}, 0, "no tensors"},
    };
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        int st = pride_optim_create(ctx, &c, x, 16, layouts[i].t, layouts[i].nt, &o);
        if (st != PRIDE_ERR_INVALID || o || !strstr(pride_last_error(ctx), layouts[i].needle)) {
            fprintf(stderr, "layout %zu: %s (%s), wanted INVALID with '%s'\n", i,
                    pride_strerror(st), pride_last_error(ctx), layouts[i].needle);
            return 1;
        }
    }

    /* structure and NULLs */
    pride_optim_config_t small = PRIDE_OPTIM_CONFIG_INIT;
    small.size = 8;
    HCHECK(pride_optim_create(ctx, &small, x, 16, t, 2, &o) == PRIDE_ERR_INVALID);
    HCHECK(strstr(pride_last_error(ctx), "PRIDE_OPTIM_CONFIG_INIT"));
    HCHECK(pride_optim_create(ctx, NULL, x, 16, t, 2, &o) == PRIDE_ERR_INVALID);
    HCHECK(pride_optim_create(ctx, &c, NULL, 16, t, 2, &o) == PRIDE_ERR_INVALID);
    HCHECK(pride_optim_create(ctx, &c, x, 0, t, 2, &o) == PRIDE_ERR_INVALID);
    HCHECK(pride_optim_create(ctx, &c, x, 16, NULL, 2, &o) == PRIDE_ERR_INVALID);
    HCHECK(pride_optim_create(ctx, &c, x, 16, t, 2, NULL) == PRIDE_ERR_INVALID);
    HCHECK(pride_optim_create(NULL, &c, x, 16, t, 2, &o) == PRIDE_ERR_INVALID);
    HCHECK(o == NULL);

    /* a good one, and NULLs to the other calls */
    HCHECK_OK(ctx, pride_optim_create(ctx, &c, x, 16, t, 2, &o));
    HCHECK(pride_optim_step(o, NULL) == PRIDE_ERR_INVALID);
    HCHECK(strstr(pride_last_error(ctx), "grads"));
    HCHECK(pride_optim_step(NULL, x) == PRIDE_ERR_INVALID);
    pride_optim_stats_t s = PRIDE_OPTIM_STATS_INIT;
    HCHECK(pride_optim_stats(NULL, &s) == PRIDE_ERR_INVALID);
    HCHECK(pride_optim_stats(o, NULL) == PRIDE_ERR_INVALID);
    s.size = 0;
    HCHECK(pride_optim_stats(o, &s) == PRIDE_ERR_INVALID);
    HCHECK(pride_optim_set_lr(o, 0) == PRIDE_ERR_INVALID);
    HCHECK(strstr(pride_last_error(ctx), "pride_optim_set_lr: lr must be"));
    HCHECK(pride_optim_set_lr(o, NAN) == PRIDE_ERR_INVALID);
    HCHECK(pride_optim_set_lr(o, -INFINITY) == PRIDE_ERR_INVALID);
    HCHECK(pride_optim_set_lr(NULL, 0.1f) == PRIDE_ERR_INVALID);
    HCHECK_OK(ctx, pride_optim_set_lr(o, 0.25f));
    HCHECK(o->lr == 0.25f);
    HCHECK(pride_optim_save(NULL, "/tmp/x") == PRIDE_ERR_INVALID);
    HCHECK(pride_optim_load(NULL, "/tmp/x") == PRIDE_ERR_INVALID);
    HCHECK_OK(ctx, pride_optim_destroy(o));
    HCHECK(pride_optim_destroy(NULL) == PRIDE_ERR_INVALID);

    /* defaults: lion betas 0.9 / 0.99, adamw 0.9 / 0.999 / 1e-8 */
    HCHECK_OK(ctx, pride_optim_create(ctx, &c, x, 16, t, 2, &o));
    HCHECK(o->beta1 == 0.9f && o->beta2 == 0.99f);
    pride_optim_destroy(o);
    c.algorithm = "adamw";
    HCHECK_OK(ctx, pride_optim_create(ctx, &c, x, 16, t, 2, &o));
    HCHECK(o->beta1 == 0.9f && o->beta2 == 0.999f && o->eps == 1e-8f);
    pride_optim_destroy(o);
    return 0;
}

static void test_bad_configs(void **state)
{
    (void)state;
    assert_int_equal(harness_run(1, run_bad, NULL, NULL), 0);
}

/* A context that claims 128 ranks: l1 and l1-ternary cannot sum int8 levels over it,
   dlion-avg cannot count past 255; the refusal comes before any communication. */
static void test_too_many_ranks(void **state)
{
    (void)state;
    struct pride_context fake;
    memset(&fake, 0, sizeof fake);
    pthread_mutex_init(&fake.mu, NULL);
    fake.nranks = 128;
    float x[4] = {0};
    pride_tensor_t t = {"w", 0, 4};
    pride_optim_t *o = NULL;
    const char *quants[] = {"l1", "l1-ternary"};
    for (int i = 0; i < 2; i++) {
        pride_optim_config_t c = optimtest_config("lioncub", quants[i], NULL, 0.1f, 0);
        assert_int_equal(pride_optim_create(&fake, &c, x, 4, &t, 1, &o), PRIDE_ERR_INVALID);
        assert_non_null(strstr(pride_last_error(&fake), "at most 127 ranks"));
        assert_non_null(strstr(pride_last_error(&fake), "128"));
    }
    fake.nranks = 256;
    pride_optim_config_t c = optimtest_config("dlion-avg", NULL, NULL, 0.1f, 0);
    assert_int_equal(pride_optim_create(&fake, &c, x, 4, &t, 1, &o), PRIDE_ERR_INVALID);
    assert_non_null(strstr(pride_last_error(&fake), "at most 255 ranks"));
    assert_null(o);
    pthread_mutex_destroy(&fake.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_too_many_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
