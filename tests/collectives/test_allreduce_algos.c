/*
 * Each allreduce algorithm forced (ctx->allreduce_algo, as $PRIDE_ALLREDUCE_ALGO sets
 * it), and auto, on 1 to 8 ranks: exact results on a spread of dtypes and ops, in and
 * out of place, counts from 0 to 1000003. Then random floats, where the order of the
 * additions changes the rounding: the result must be within the error bound of a sum
 * of P terms, and bit-identical on every rank (hashes compared at the end).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "colltest.h"
#include "ctx.h"

static const int algos[] = {PRIDE_ALGO_RING, PRIDE_ALGO_RHD, PRIDE_ALGO_TREE, PRIDE_ALGO_AUTO};
static const char *const algo_names[] = {"auto", "ring", "tree", "rhd"};
static const size_t counts[] = {0, 1, 7, 1000, 65537};

static const struct {
    pride_dtype_t dt;
    pride_op_t op;
} spread[] = {
    {PRIDE_FLOAT32, PRIDE_SUM}, {PRIDE_FLOAT16, PRIDE_AVG}, {PRIDE_BFLOAT16, PRIDE_SUM},
    {PRIDE_INT8, PRIDE_SUM},    {PRIDE_INT64, PRIDE_PROD},  {PRIDE_UINT32, PRIDE_MIN},
    {PRIDE_FLOAT64, PRIDE_MAX}, {PRIDE_FLOAT64, PRIDE_AVG},
};

static uint64_t results;

static void check_exact(pride_context_t *ctx, int algo, uint64_t seed, pride_dtype_t dt,
                        pride_op_t op, size_t n, int inplace)
{
    int P = pride_nranks(ctx), r = pride_rank(ctx);
    size_t es = pride_dtype_size(dt);
    char *in = ct_alloc(n * es), *out = inplace ? in : ct_alloc(n * es);
    ct_fill(in, seed, dt, op, r, 0, n);
    int st = pride_allreduce(ctx, in, out, n, dt, op);
    if (st != PRIDE_OK || ct_check_reduced(out, seed, dt, op, P, 0, n) != 0) {
        fprintf(stderr, "rank %d of %d: algo %s, allreduce(%zu, dtype %d, op %d, %s): %s %s\n",
                r, P, algo_names[algo], n, (int)dt, (int)op, inplace ? "in place" : "",
                pride_strerror(st), pride_last_error(ctx));
        HCHECK(0);
    }
    results = ct_hash(results, out, n * es);
    if (!inplace)
        free(out);
    free(in);
}

/* Element i of rank r's random input, in [-1, 1). */
static double random_value(int r, size_t i)
{
    return (double)(ct_mix(77, r, i) >> 11) / (double)(UINT64_C(1) << 52) - 1;
}

/* Random values: the sum depends on the order of the additions. */
static void check_rounding(pride_context_t *ctx, int algo, pride_dtype_t dt, size_t n)
{
    int P = pride_nranks(ctx), r = pride_rank(ctx);
    size_t es = pride_dtype_size(dt);
    char *buf = ct_alloc(n * es);
    for (size_t i = 0; i < n; i++)
        ct_store(buf, dt, i, random_value(r, i));
    HCHECK_OK(ctx, pride_allreduce(ctx, buf, buf, n, dt, PRIDE_SUM));
    /* each partial sum is rounded once: error <= (P-1) * u * sum |x_j| */
    double u = dt == PRIDE_FLOAT16   ? ldexp(1, -11)
               : dt == PRIDE_FLOAT32 ? ldexp(1, -24)
                                     : ldexp(1, -53);
    for (size_t i = 0; i < n; i++) {
        double exact = 0, mag = 0;
        char one[8];
        for (int j = 0; j < P; j++) {
            ct_store(one, dt, 0, random_value(j, i));
            exact += ct_load(one, dt, 0);
            mag += fabs(ct_load(one, dt, 0));
        }
        double got = ct_load(buf, dt, i);
        if (fabs(got - exact) > (P - 1) * u * mag * 1.01) {
            fprintf(stderr, "rank %d: algo %s, dtype %d, element %zu: %.17g, exact %.17g\n", r,
                    algo_names[algo], (int)dt, i, got, exact);
            HCHECK(0);
        }
    }
    results = ct_hash(results, buf, n * es);
    free(buf);
}

static int run_algos(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)arg;
    (void)rank;
    uint64_t seed = 0xA160000u + (uint64_t)P;
    results = 0xCBF29CE484222325u;
    for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++) {
        ctx->allreduce_algo = algos[a];
        for (size_t s = 0; s < sizeof spread / sizeof spread[0]; s++)
            for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
                check_exact(ctx, algos[a], seed, spread[s].dt, spread[s].op, counts[c],
                            (int)((s + c) % 2));
        check_exact(ctx, algos[a], seed, PRIDE_FLOAT32, PRIDE_SUM, 1000003, 0);
        check_exact(ctx, algos[a], seed, PRIDE_BFLOAT16, PRIDE_AVG, 1000003, 1);
        check_rounding(ctx, algos[a], PRIDE_FLOAT32, 30011);
        check_rounding(ctx, algos[a], PRIDE_FLOAT16, 4099);
        check_rounding(ctx, algos[a], PRIDE_FLOAT64, 777);
    }
    ctx->allreduce_algo = PRIDE_ALGO_AUTO;
    HCHECK(ct_same_everywhere(ctx, results));
    return 0;
}

static void test_algos(void **state)
{
    (void)state;
    struct harness_opts opts = {.timeout_ms = 60000, .guard_s = 600};
    for (int P = 1; P <= 8; P++)
        if (harness_run(P, run_algos, NULL, &opts) != 0)
            fail_msg("allreduce algorithms on %d ranks failed", P);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_algos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
