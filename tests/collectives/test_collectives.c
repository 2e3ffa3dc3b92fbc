/*
 * Every blocking collective against a reference each rank computes itself: every
 * dtype and op, in place and out of place, counts 0, 1, 7 on ranks {1,2,3,4,5,8},
 * a medium count (past the small-message algorithms) on a spread of dtypes and ops,
 * and 1000003 elements on a representative subset. Results that must agree across
 * ranks (allreduce, allgather, broadcast) are hashed, and the hashes compared at the
 * end of each run. One harness_run per rank count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "colltest.h"

#define BIG 1000003
#define MEDIUM 30011

static const size_t small_counts[] = {0, 1, 7};

/* What a rank is checking now, printed when a check fails. */
static char ct_case[256];
static uint64_t ct_results; /* hash of everything that must be equal on every rank */

#define CASE(...) snprintf(ct_case, sizeof ct_case, __VA_ARGS__)
#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "rank %d of %d, %s:\n", pride_rank(ctx), pride_nranks(ctx),   \
                    ct_case);                                                             \
            HCHECK(cond);                                                                 \
        }                                                                                 \
    } while (0)
#define CALL(expr)                                                                        \
    do {                                                                                  \
        int cst_ = (expr);                                                                \
        if (cst_ != PRIDE_OK)                                                             \
            fprintf(stderr, "rank %d, %s:\n", pride_rank(ctx), ct_case);                  \
        HCHECK_OK(ctx, cst_);                                                             \
    } while (0)

static const char *dt_name(pride_dtype_t dt)
{
    static const char *const n[] = {"int8",    "uint8",    "int32",   "uint32",  "int64",
                                    "uint64",  "float16",  "bfloat16", "float32", "float64"};
    return n[dt];
}

static const char *op_name(pride_op_t op)
{
    static const char *const n[] = {"sum", "prod", "min", "max", "avg"};
    return n[op];
}

static void t_allreduce(pride_context_t *ctx, uint64_t seed, pride_dtype_t dt, pride_op_t op,
                        size_t n, int inplace)
{
    int P = pride_nranks(ctx), r = pride_rank(ctx);
    size_t es = pride_dtype_size(dt);
    CASE("allreduce(%zu, %s, %s, %s)", n, dt_name(dt), op_name(op), inplace ? "in place" : "");
    char *in = n ? ct_alloc(n * es) : NULL, *out = inplace ? in : n ? ct_alloc(n * es) : NULL;
    ct_fill(in, seed, dt, op, r, 0, n);
    if (!inplace && n)
        memset(out, 0xA5, n * es);
    CALL(pride_allreduce(ctx, in, out, n, dt, op));
    if (!inplace)
        CHECK(ct_check_input(in, seed, dt, op, r, 0, n) == 0);
    CHECK(ct_check_reduced(out, seed, dt, op, P, 0, n) == 0);
    ct_results = ct_hash(ct_results, out, n * es);
    if (!inplace)
        free(out);
    free(in);
}

static void t_reduce_scatter(pride_context_t *ctx, uint64_t seed, pride_dtype_t dt,
                             pride_op_t op, size_t n, int inplace)
{
    int P = pride_nranks(ctx), r = pride_rank(ctx);
    size_t es = pride_dtype_size(dt), total = n * (size_t)P;
    CASE("reduce_scatter(%zu, %s, %s, %s)", n, dt_name(dt), op_name(op),
         inplace ? "in place" : "");
    char *in = total ? ct_alloc(total * es) : NULL;
    char *out = inplace ? in : n ? ct_alloc(n * es) : NULL;
    ct_fill(in, seed, dt, op, r, 0, total);
    CALL(pride_reduce_scatter(ctx, in, out, n, dt, op));
    if (!inplace)
        CHECK(ct_check_input(in, seed, dt, op, r, 0, total) == 0);
    CHECK(ct_check_reduced(out, seed, dt, op, P, (size_t)r * n, n) == 0);
    if (!inplace)
        free(out);
    free(in);
}

/* mode 0: out of place; 1: sendbuf == recvbuf (input first); 2: input in own block */
static void t_allgather(pride_context_t *ctx, uint64_t seed, pride_dtype_t dt, size_t n, int mode)
{
    int P = pride_nranks(ctx), r = pride_rank(ctx);
    size_t es = pride_dtype_size(dt), total = n * (size_t)P;
    CASE("allgather(%zu, %s, mode %d)", n, dt_name(dt), mode);
    char *out = total ? ct_alloc(total * es) : NULL;
    char *in = mode == 0 ? (n ? ct_alloc(n * es) : NULL)
                         : mode == 1 || !out ? out : out + r * n * es;
    if (total)
        memset(out, 0x5A, total * es);
    ct_fill(in, seed, dt, PRIDE_MIN, r, 0, n);
    CALL(pride_allgather(ctx, in, out, n, dt));
    if (mode == 0)
        CHECK(ct_check_input(in, seed, dt, PRIDE_MIN, r, 0, n) == 0);
    for (int j = 0; j < P; j++)
        CHECK(ct_check_input(out + j * n * es, seed, dt, PRIDE_MIN, j, 0, n) == 0);
    ct_results = ct_hash(ct_results, out, total * es);
    if (mode == 0)
        free(in);
    free(out);
}

static void t_broadcast(pride_context_t *ctx, uint64_t seed, pride_dtype_t dt, size_t n, int root)
{
    int r = pride_rank(ctx);
    size_t es = pride_dtype_size(dt);
    CASE("broadcast(%zu, %s, root %d)", n, dt_name(dt), root);
    char *buf = n ? ct_alloc(n * es) : NULL;
    if (r == root)
        ct_fill(buf, seed, dt, PRIDE_MAX, root, 0, n);
    else if (n)
        memset(buf, 0x5A, n * es);
    CALL(pride_broadcast(ctx, buf, n, dt, root));
    CHECK(ct_check_input(buf, seed, dt, PRIDE_MAX, root, 0, n) == 0);
    ct_results = ct_hash(ct_results, buf, n * es);
    free(buf);
}

static void t_reduce(pride_context_t *ctx, uint64_t seed, pride_dtype_t dt, pride_op_t op,
                     size_t n, int root, int inplace)
{
    int P = pride_nranks(ctx), r = pride_rank(ctx);
    size_t es = pride_dtype_size(dt);
    CASE("reduce(%zu, %s, %s, root %d, %s)", n, dt_name(dt), op_name(op), root,
         inplace ? "in place" : "");
    char *in = n ? ct_alloc(n * es) : NULL;
    /* recvbuf is ignored off the root: pass NULL there */
    char *out = r != root ? NULL : inplace ? in : n ? ct_alloc(n * es) : NULL;
    ct_fill(in, seed, dt, op, r, 0, n);
    CALL(pride_reduce(ctx, in, out, n, dt, op, root));
    if (r == root)
        CHECK(ct_check_reduced(out, seed, dt, op, P, 0, n) == 0);
    if (r != root || !inplace)
        CHECK(ct_check_input(in, seed, dt, op, r, 0, n) == 0);
    if (out != in)
        free(out);
    free(in);
}

static void t_alltoall(pride_context_t *ctx, uint64_t seed, pride_dtype_t dt, size_t n,
                       int inplace)
{
    int P = pride_nranks(ctx), r = pride_rank(ctx);
    size_t es = pride_dtype_size(dt), total = n * (size_t)P;
    CASE("alltoall(%zu, %s, %s)", n, dt_name(dt), inplace ? "in place" : "");
    char *in = total ? ct_alloc(total * es) : NULL;
    char *out = inplace ? in : total ? ct_alloc(total * es) : NULL;
    ct_fill(in, seed, dt, PRIDE_MAX, r, 0, total);
    CALL(pride_alltoall(ctx, in, out, n, dt));
    if (!inplace)
        CHECK(ct_check_input(in, seed, dt, PRIDE_MAX, r, 0, total) == 0);
    for (int j = 0; j < P; j++)
        CHECK(ct_check_input(out + j * n * es, seed, dt, PRIDE_MAX, j, (size_t)r * n, n) == 0);
    if (!inplace)
        free(out);
    free(in);
}

/* Each rank leaves a file before the barrier; after it, every file must be there. */
static void t_barrier(pride_context_t *ctx, const char *dir, int round)
{
    int P = pride_nranks(ctx), r = pride_rank(ctx);
    char path[512];
    CASE("barrier round %d", round);
    snprintf(path, sizeof path, "%s/%d.%d", dir, round, r);
    FILE *f = fopen(path, "w");
    HCHECK(f);
    fclose(f);
    CALL(pride_barrier(ctx));
    for (int j = 0; j < P; j++) {
        struct stat sb;
        snprintf(path, sizeof path, "%s/%d.%d", dir, round, j);
        CHECK(stat(path, &sb) == 0);
    }
}

/* A spread of (dtype, op) pairs for the counts that are too costly for all 44. */
static const struct {
    pride_dtype_t dt;
    pride_op_t op;
} spread[] = {
    {PRIDE_FLOAT32, PRIDE_SUM}, {PRIDE_BFLOAT16, PRIDE_AVG}, {PRIDE_INT32, PRIDE_MAX},
    {PRIDE_FLOAT16, PRIDE_SUM}, {PRIDE_UINT64, PRIDE_MIN},   {PRIDE_FLOAT64, PRIDE_AVG},
    {PRIDE_INT8, PRIDE_PROD},
};
#define NSPREAD (sizeof spread / sizeof spread[0])

static int run_matrix(pride_context_t *ctx, int rank, int P, void *arg)
{
    const char *dir = arg;
    uint64_t seed = 0x5EED0000u + (uint64_t)P;
    ct_results = 0xCBF29CE484222325u;
    for (int round = 0; round < 3; round++)
        t_barrier(ctx, dir, round);
    for (int dt = 0; dt < CT_NDTYPES; dt++) {
        for (size_t ci = 0; ci < sizeof small_counts / sizeof small_counts[0]; ci++) {
            size_t n = small_counts[ci];
            for (int op = 0; op < CT_NOPS; op++) {
                if (!ct_valid(dt, op))
                    continue;
                for (int inplace = 0; inplace < 2; inplace++) {
                    t_allreduce(ctx, seed, dt, op, n, inplace);
                    t_reduce_scatter(ctx, seed, dt, op, n, inplace);
                    t_reduce(ctx, seed, dt, op, n, (int)(n + (size_t)op + (size_t)inplace) % P,
                             inplace);
                }
            }
            for (int mode = 0; mode < 3; mode++)
                t_allgather(ctx, seed, dt, n, mode);
            for (int inplace = 0; inplace < 2; inplace++)
                t_alltoall(ctx, seed, dt, n, inplace);
            for (int root = 0; root < P; root++)
                t_broadcast(ctx, seed, dt, n, root);
        }
    }
    /* Medium: past the one-round and tree algorithms (rhd, chains, small rings). */
    for (size_t s = 0; s < NSPREAD; s++) {
        pride_dtype_t dt = spread[s].dt;
        pride_op_t op = spread[s].op;
        int inplace = (int)(s % 2);
        t_allreduce(ctx, seed, dt, op, MEDIUM, inplace);
        t_reduce_scatter(ctx, seed, dt, op, MEDIUM / (size_t)P, inplace);
        t_reduce(ctx, seed, dt, op, MEDIUM, (int)s % P, inplace);
        t_allgather(ctx, seed, dt, MEDIUM / (size_t)P, (int)(s % 3));
        t_alltoall(ctx, seed, dt, MEDIUM / (size_t)P, inplace);
        t_broadcast(ctx, seed, dt, MEDIUM, (int)(s + 1) % P);
    }
    /* Big: 1000003 elements in all (the per-rank blocks of reduce_scatter, allgather and
       alltoall are a P-th of it), both placements, on the first few pairs of the spread. */
    for (size_t s = 0; s < 3; s++) {
        pride_dtype_t dt = spread[s].dt;
        pride_op_t op = spread[s].op;
        for (int inplace = 0; inplace < 2; inplace++) {
            t_allreduce(ctx, seed, dt, op, BIG, inplace);
            t_reduce_scatter(ctx, seed, dt, op, BIG / (size_t)P, inplace);
            t_reduce(ctx, seed, dt, op, BIG, (P - 1 + inplace) % P, inplace);
            t_allgather(ctx, seed, dt, BIG / (size_t)P, inplace ? 2 : 0);
            t_alltoall(ctx, seed, dt, BIG / (size_t)P, inplace);
        }
        t_broadcast(ctx, seed, dt, BIG, (int)s % P);
    }
    CASE("comparing result hashes across ranks");
    CHECK(ct_same_everywhere(ctx, ct_results));
    (void)rank;
    return 0;
}

static void run_on(int P)
{
    char dir[] = "/tmp/pride-barrier-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct harness_opts opts = {.timeout_ms = 60000, .guard_s = 600};
    assert_int_equal(harness_run(P, run_matrix, dir, &opts), 0);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_ranks_1(void **state) { (void)state; run_on(1); }
static void test_ranks_2(void **state) { (void)state; run_on(2); }
static void test_ranks_3(void **state) { (void)state; run_on(3); }
static void test_ranks_4(void **state) { (void)state; run_on(4); }
static void test_ranks_5(void **state) { (void)state; run_on(5); }
static void test_ranks_8(void **state) { (void)state; run_on(8); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranks_1), cmocka_unit_test(test_ranks_2),
        cmocka_unit_test(test_ranks_3), cmocka_unit_test(test_ranks_4),
        cmocka_unit_test(test_ranks_5), cmocka_unit_test(test_ranks_8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
