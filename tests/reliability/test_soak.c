/*
 * Soak: 10,000 collectives of every kind (non-blocking allreduce too) on 4 ranks, one after another, with sizes,
 * roots, reduction ops and allreduce algorithms drawn from a generator every rank
 * seeds the same way. Sizes are mostly small (so the run stays short, also under the
 * sanitizers), one in a hundred up to 64 Ki elements. Every result is checked
 * element by element against a closed form; no call may fail, and in the sanitizer
 * build nothing may leak.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctx.h"
#include "harness.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#define SOAK_CALLS 10000
#define SOAK_MAX_COUNT 65536

static uint32_t soak_val(int rank, int call, size_t j)
{
    uint64_t s = ((uint64_t)call << 32) ^ ((uint64_t)rank << 24) ^ j;
    return (uint32_t)harness_rand(&s);
}

static uint32_t soak_op(pride_op_t op, uint32_t a, uint32_t b)
{
    return op == PRIDE_SUM ? a + b : op == PRIDE_MIN ? (a < b ? a : b) : (a > b ? a : b);
}

/* op over every rank's value of element j */
static uint32_t soak_reduced(pride_op_t op, int n, int call, size_t j)
{
    uint32_t acc = soak_val(0, call, j);
    for (int p = 1; p < n; p++)
        acc = soak_op(op, acc, soak_val(p, call, j));
    return acc;
}

static int soak_rank(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)arg;
    uint32_t *sb = malloc((size_t)n * SOAK_MAX_COUNT * sizeof *sb);
    uint32_t *rb = malloc((size_t)n * SOAK_MAX_COUNT * sizeof *rb);
    HCHECK(sb && rb);
    static const pride_op_t ops[] = {PRIDE_SUM, PRIDE_MIN, PRIDE_MAX};
    uint64_t rng = 2026;
    for (int call = 0; call < SOAK_CALLS; call++) {
        uint64_t r = harness_rand(&rng);
        int kind = (int)(r % 9);
        size_t count = (r >> 8) % 100 == 0 ? (size_t)((r >> 16) % SOAK_MAX_COUNT)
                                            : (size_t)((r >> 16) % 257);
        pride_op_t op = ops[(r >> 34) % 3];
        int root = (int)((r >> 40) % (uint64_t)n);
        ctx->allreduce_algo = (int)((r >> 48) % 4); /* auto, ring, tree, rhd */
        size_t total = (size_t)n * count;
        for (size_t j = 0; j < (kind == 3 || kind == 5 ? total : count); j++)
            sb[j] = soak_val(rank, call, j);
        switch (kind) {
        case 0:
        case 1: /* allreduce, out of place and in place */
            if (kind == 1)
                memcpy(rb, sb, count * sizeof *sb);
            HCHECK_OK(ctx, pride_allreduce(ctx, kind == 1 ? rb : sb, rb, count, PRIDE_UINT32, op));
            for (size_t j = 0; j < count; j++)
                HCHECK(rb[j] == soak_reduced(op, n, call, j));
            break;
        case 2: /* broadcast */
            if (rank != root)
                memset(sb, 0xa5, count * sizeof *sb);
            HCHECK_OK(ctx, pride_broadcast(ctx, sb, count, PRIDE_UINT32, root));
            for (size_t j = 0; j < count; j++)
                HCHECK(sb[j] == soak_val(root, call, j));
            break;
        case 3: /* reduce_scatter: this rank's block of the reduction */
            HCHECK_OK(ctx, pride_reduce_scatter(ctx, sb, rb, count, PRIDE_UINT32, op));
            for (size_t j = 0; j < count; j++)
                HCHECK(rb[j] == soak_reduced(op, n, call, (size_t)rank * count + j));
            break;
        case 4: /* allgather */
            HCHECK_OK(ctx, pride_allgather(ctx, sb, rb, count, PRIDE_UINT32));
            for (int p = 0; p < n; p++)
                for (size_t j = 0; j < count; j++)
                    HCHECK(rb[(size_t)p * count + j] == soak_val(p, call, j));
            break;
        case 5: /* alltoall: block p of rank q's send lands in block q of rank p */
            HCHECK_OK(ctx, pride_alltoall(ctx, sb, rb, count, PRIDE_UINT32));
            for (int p = 0; p < n; p++)
                for (size_t j = 0; j < count; j++)
                    HCHECK(rb[(size_t)p * count + j] ==
                           soak_val(p, call, (size_t)rank * count + j));
            break;
        case 6: /* reduce to root */
            HCHECK_OK(ctx, pride_reduce(ctx, sb, rb, count, PRIDE_UINT32, op, root));
            for (size_t j = 0; rank == root && j < count; j++)
                HCHECK(rb[j] == soak_reduced(op, n, call, j));
            break;
        case 7: { /* non-blocking allreduce */
            pride_request_t *req;
            HCHECK_OK(ctx, pride_iallreduce(ctx, sb, rb, count, PRIDE_UINT32, op, &req));
            HCHECK_OK(ctx, pride_wait(req));
            for (size_t j = 0; j < count; j++)
                HCHECK(rb[j] == soak_reduced(op, n, call, j));
            break;
        }
        default:
            HCHECK_OK(ctx, pride_barrier(ctx));
        }
    }
    free(sb);
    free(rb);
    return 0;
}

/* Start, soak, finish, then (in a sanitizer build) look for anything left behind. */
static int soak_process(int rank, int n, const char *store, void *arg)
{
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    cfg.rank = rank;
    cfg.nranks = n;
    cfg.store = store;
    cfg.timeout_ms = 60000;
    pride_context_t *ctx;
    HCHECK_OK(NULL, pride_init(&cfg, &ctx));
    int rc = soak_rank(ctx, rank, n, arg);
    HCHECK_OK(NULL, pride_finalize(ctx));
#if defined(__SANITIZE_ADDRESS__)
    HCHECK(__lsan_do_recoverable_leak_check() == 0);
#endif
    return rc;
}

static void test_soak(void **state)
{
    (void)state;
    struct harness_opts o = {.guard_s = 900};
    assert_int_equal(harness_fork(4, soak_process, NULL, &o), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
