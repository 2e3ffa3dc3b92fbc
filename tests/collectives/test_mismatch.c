/*
 * Ranks that disagree about a collective (its count, dtype, op, root, algorithm, or
 * which collective it is) must all get PRIDE_ERR_MISMATCH, never hang and never
 * succeed; the context stays failed afterwards. Each case runs in its own harness_run
 * (a mismatch poisons the context), on 2, 3 and 5 ranks, with the odd rank out at
 * either end of the rank order. Bad arguments give PRIDE_ERR_INVALID with a sentence
 * on the calling rank only, and leave the context usable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "colltest.h"
#include "ctx.h"

#define BIG 300007

enum mm_call {
    MM_ALLREDUCE,
    MM_BROADCAST,
    MM_REDUCE,
    MM_BARRIER,
    MM_ALLGATHER,
    MM_REDUCE_SCATTER,
    MM_ALLTOALL,
};

/* One side of a disagreement. */
struct mm_side {
    enum mm_call call;
    size_t count;
    pride_dtype_t dt;
    pride_op_t op;
    int root;
    int algo; /* enum pride_algo, allreduce only */
};

struct mm_case {
    const char *name;
    struct mm_side usual, odd;
    int odd_rank; /* -1: the last rank */
};

static int mm_call(pride_context_t *ctx, const struct mm_side *s, void *buf)
{
    int P = pride_nranks(ctx);
    ctx->allreduce_algo = s->algo;
    switch (s->call) {
    case MM_ALLREDUCE: return pride_allreduce(ctx, buf, buf, s->count, s->dt, s->op);
    case MM_BROADCAST: return pride_broadcast(ctx, buf, s->count, s->dt, s->root);
    case MM_REDUCE: return pride_reduce(ctx, buf, buf, s->count, s->dt, s->op, s->root);
    case MM_BARRIER: return pride_barrier(ctx);
    case MM_ALLGATHER:
        return pride_allgather(ctx, buf, buf, s->count / (size_t)P, s->dt);
    case MM_REDUCE_SCATTER:
        return pride_reduce_scatter(ctx, buf, buf, s->count / (size_t)P, s->dt, s->op);
    case MM_ALLTOALL: return pride_alltoall(ctx, buf, buf, s->count / (size_t)P, s->dt);
    }
    return PRIDE_ERR_INVALID;
}

struct mm_arg {
    const struct mm_case *mc;
    const char *dir;
};

/* Wait, outside pride (its context has failed), until every rank has got its status:
   a rank that closes its sockets early is seen by a peer as a lost connection
   (PRIDE_ERR_PEER), and that is not what is tested here. */
static void mm_rendezvous(const char *dir, int rank, int P)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%d", dir, rank);
    FILE *f = fopen(path, "w");
    HCHECK(f);
    fclose(f);
    for (int j = 0; j < P; j++) {
        snprintf(path, sizeof path, "%s/%d", dir, j);
        for (int tries = 0; access(path, F_OK) != 0; tries++) {
            HCHECK(tries < 6000);
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

static int mm_run(pride_context_t *ctx, int rank, int P, void *arg)
{
    const struct mm_arg *ma = arg;
    const struct mm_case *mc = ma->mc;
    int odd = mc->odd_rank < 0 ? P - 1 : mc->odd_rank;
    const struct mm_side *s = rank == odd ? &mc->odd : &mc->usual;
    void *buf = ct_alloc(2 * (BIG + 8) * sizeof(double));
    memset(buf, 0, 2 * (BIG + 8) * sizeof(double));
    /* One good collective first, so the mismatch is not in the first sequence number.
       A rank still finishing it may already hear that others failed the next one. */
    int st = pride_allreduce(ctx, buf, buf, 3, PRIDE_INT32, PRIDE_SUM);
    HCHECK_STATUS(ctx, st, st == PRIDE_OK || st == PRIDE_ERR_MISMATCH);
    st = mm_call(ctx, s, buf);
    if (st != PRIDE_ERR_MISMATCH) {
        fprintf(stderr, "%s: rank %d of %d got %s (%s), expected a mismatch\n", mc->name, rank, P,
                pride_strerror(st), pride_last_error(ctx));
        HCHECK_STATUS(ctx, st, st == PRIDE_ERR_MISMATCH);
    }
    HCHECK(strlen(pride_last_error(ctx)) > 0);
    /* the context stays failed */
    ctx->allreduce_algo = PRIDE_ALGO_AUTO;
    HCHECK(pride_allreduce(ctx, buf, buf, 3, PRIDE_INT32, PRIDE_SUM) == PRIDE_ERR_MISMATCH);
    HCHECK(pride_barrier(ctx) == PRIDE_ERR_MISMATCH);
    free(buf);
    mm_rendezvous(ma->dir, rank, P);
    return 0;
}

#define AR(n, dt, op) {MM_ALLREDUCE, n, dt, op, -1, PRIDE_ALGO_AUTO}
#define ARA(n, algo) {MM_ALLREDUCE, n, PRIDE_FLOAT32, PRIDE_SUM, -1, algo}
#define BC(n, root) {MM_BROADCAST, n, PRIDE_FLOAT32, PRIDE_SUM, root, PRIDE_ALGO_AUTO}
#define RD(n, root) {MM_REDUCE, n, PRIDE_FLOAT32, PRIDE_SUM, root, PRIDE_ALGO_AUTO}
#define BAR {MM_BARRIER, 0, PRIDE_FLOAT32, PRIDE_SUM, -1, PRIDE_ALGO_AUTO}
#define AG(n) {MM_ALLGATHER, n, PRIDE_FLOAT32, PRIDE_SUM, -1, PRIDE_ALGO_AUTO}
#define RS(n) {MM_REDUCE_SCATTER, n, PRIDE_FLOAT32, PRIDE_SUM, -1, PRIDE_ALGO_AUTO}
#define A2A(n) {MM_ALLTOALL, n, PRIDE_FLOAT32, PRIDE_SUM, -1, PRIDE_ALGO_AUTO}

static const struct mm_case cases[] = {
    {"allreduce count", AR(7, PRIDE_FLOAT32, PRIDE_SUM), AR(8, PRIDE_FLOAT32, PRIDE_SUM), 0},
    {"allreduce count 0 vs 1", AR(0, PRIDE_FLOAT32, PRIDE_SUM), AR(1, PRIDE_FLOAT32, PRIDE_SUM),
     -1},
    {"allreduce big count (ring)", ARA(BIG, PRIDE_ALGO_RING), ARA(BIG + 1, PRIDE_ALGO_RING), -1},
    {"allreduce dtype", AR(100, PRIDE_FLOAT32, PRIDE_SUM), AR(100, PRIDE_INT32, PRIDE_SUM), 0},
    {"allreduce op", AR(100, PRIDE_FLOAT32, PRIDE_SUM), AR(100, PRIDE_FLOAT32, PRIDE_MAX), -1},
    {"allreduce algorithm", ARA(1000, PRIDE_ALGO_TREE), ARA(1000, PRIDE_ALGO_RING), 0},
    {"allreduce algorithm rhd/tree", ARA(BIG, PRIDE_ALGO_RHD), ARA(BIG, PRIDE_ALGO_TREE), -1},
    /* on 2 ranks the tree's exchange is its check frame; rhd sends a separate one */
    {"allreduce algorithm tree/rhd", ARA(100, PRIDE_ALGO_TREE), ARA(100, PRIDE_ALGO_RHD), 0},
    {"broadcast root", BC(100, 0), BC(100, 1), -1},
    {"broadcast root (odd one is the root)", BC(100, 1), BC(100, 0), 0},
    {"broadcast count", BC(100, 0), BC(101, 0), -1},
    {"broadcast big root", BC(BIG, 0), BC(BIG, 1), 0},
    {"reduce root", RD(100, 0), RD(100, 1), -1},
    {"reduce big root", RD(BIG, 1), RD(BIG, 0), 0},
    {"allreduce vs broadcast", AR(100, PRIDE_FLOAT32, PRIDE_SUM), BC(100, 0), -1},
    {"allreduce vs barrier", AR(100, PRIDE_FLOAT32, PRIDE_SUM), BAR, 0},
    {"barrier vs allreduce", BAR, AR(100, PRIDE_FLOAT32, PRIDE_SUM), -1},
    {"barrier vs broadcast", BAR, BC(10, 0), -1},
    {"reduce_scatter vs allgather", RS(BIG), AG(BIG), 0},
    {"alltoall vs allreduce", A2A(100), AR(100, PRIDE_FLOAT32, PRIDE_SUM), -1},
    {"allgather count", AG(30), AG(40), 0},
    {"reduce vs allreduce", RD(BIG, 0), ARA(BIG, PRIDE_ALGO_RING), -1},
};

static void test_mismatch(void **state)
{
    (void)state;
    /* The check itself is the collectives' (the same code over every transport): on
       tcp every case runs on 2, 3 and 5 ranks; the other backends, which only have to
       carry the failure, run on 2 and 5 (the two-rank path and a non-power of two). */
    static const int sizes[] = {2, 5, 3};
    const char *tr = getenv("PRIDE_TRANSPORT");
    size_t nsizes = tr && *tr && strcmp(tr, "tcp") != 0 ? 2 : 3;
    struct harness_opts opts = {.timeout_ms = 15000, .guard_s = 120};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t j = 0; j < nsizes; j++) {
            char dir[] = "/tmp/pride-mismatch-XXXXXX", cmd[64];
            assert_non_null(mkdtemp(dir));
            struct mm_arg ma = {&cases[i], dir};
            int rc = harness_run(sizes[j], mm_run, &ma, &opts);
            snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
            assert_int_equal(system(cmd), 0);
            if (rc != 0)
                fail_msg("case \"%s\" on %d ranks failed", cases[i].name, sizes[j]);
        }
}

/* ---- bad arguments ---- */

#define EXPECT_INVALID(expr, fn)                                                          \
    do {                                                                                  \
        int est_ = (expr);                                                                \
        if (est_ != PRIDE_ERR_INVALID || !strstr(pride_last_error(ctx), fn)) {            \
            fprintf(stderr, "%s -> %s (%s)\n", #expr, pride_strerror(est_),               \
                    pride_last_error(ctx));                                               \
            HCHECK(0);                                                                    \
        }                                                                                 \
    } while (0)

static int args_run(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)arg;
    double buf[64] = {0}, out[64] = {0};
    const pride_dtype_t bad_dt = (pride_dtype_t)42;
    const pride_op_t bad_op = (pride_op_t)42;
    HCHECK(pride_allreduce(NULL, buf, out, 1, PRIDE_FLOAT32, PRIDE_SUM) == PRIDE_ERR_INVALID);
    HCHECK(pride_reduce_scatter(NULL, buf, out, 1, PRIDE_FLOAT32, PRIDE_SUM) == PRIDE_ERR_INVALID);
    HCHECK(pride_allgather(NULL, buf, out, 1, PRIDE_FLOAT32) == PRIDE_ERR_INVALID);
    HCHECK(pride_broadcast(NULL, buf, 1, PRIDE_FLOAT32, 0) == PRIDE_ERR_INVALID);
    HCHECK(pride_reduce(NULL, buf, out, 1, PRIDE_FLOAT32, PRIDE_SUM, 0) == PRIDE_ERR_INVALID);
    HCHECK(pride_alltoall(NULL, buf, out, 1, PRIDE_FLOAT32) == PRIDE_ERR_INVALID);
    HCHECK(pride_barrier(NULL) == PRIDE_ERR_INVALID);

    EXPECT_INVALID(pride_allreduce(ctx, NULL, out, 4, PRIDE_FLOAT32, PRIDE_SUM), "pride_allreduce");
    EXPECT_INVALID(pride_allreduce(ctx, buf, NULL, 4, PRIDE_FLOAT32, PRIDE_SUM), "pride_allreduce");
    EXPECT_INVALID(pride_allreduce(ctx, buf, out, 4, bad_dt, PRIDE_SUM), "pride_allreduce");
    EXPECT_INVALID(pride_allreduce(ctx, buf, out, 4, PRIDE_FLOAT32, bad_op), "pride_allreduce");
    EXPECT_INVALID(pride_allreduce(ctx, buf, out, 4, PRIDE_INT32, PRIDE_AVG), "pride_allreduce");
    EXPECT_INVALID(pride_allreduce(ctx, buf, out, SIZE_MAX / 2, PRIDE_FLOAT32, PRIDE_SUM),
                   "pride_allreduce");
    EXPECT_INVALID(pride_reduce_scatter(ctx, buf, NULL, 1, PRIDE_FLOAT32, PRIDE_SUM),
                   "pride_reduce_scatter");
    EXPECT_INVALID(pride_reduce_scatter(ctx, buf, out, 1, PRIDE_UINT8, PRIDE_AVG),
                   "pride_reduce_scatter");
    EXPECT_INVALID(pride_reduce_scatter(ctx, buf, out, SIZE_MAX / 4, PRIDE_FLOAT64, PRIDE_SUM),
                   "pride_reduce_scatter");
    EXPECT_INVALID(pride_allgather(ctx, NULL, out, 1, PRIDE_FLOAT32), "pride_allgather");
    EXPECT_INVALID(pride_allgather(ctx, buf, out, 1, bad_dt), "pride_allgather");
    EXPECT_INVALID(pride_allgather(ctx, buf, out, SIZE_MAX / 2, PRIDE_FLOAT32), "pride_allgather");
    EXPECT_INVALID(pride_broadcast(ctx, NULL, 3, PRIDE_FLOAT32, 0), "pride_broadcast");
    EXPECT_INVALID(pride_broadcast(ctx, buf, 3, PRIDE_FLOAT32, -1), "pride_broadcast");
    EXPECT_INVALID(pride_broadcast(ctx, buf, 3, PRIDE_FLOAT32, P), "pride_broadcast");
    EXPECT_INVALID(pride_broadcast(ctx, buf, 3, bad_dt, 0), "pride_broadcast");
    EXPECT_INVALID(pride_reduce(ctx, buf, out, 3, PRIDE_FLOAT32, PRIDE_SUM, P), "pride_reduce");
    EXPECT_INVALID(pride_reduce(ctx, NULL, out, 3, PRIDE_FLOAT32, PRIDE_SUM, 0), "pride_reduce");
    EXPECT_INVALID(pride_reduce(ctx, buf, out, 3, PRIDE_INT64, PRIDE_AVG, 0), "pride_reduce");
    EXPECT_INVALID(pride_alltoall(ctx, buf, NULL, 2, PRIDE_FLOAT32), "pride_alltoall");
    EXPECT_INVALID(pride_alltoall(ctx, buf, out, SIZE_MAX / 2, PRIDE_INT32), "pride_alltoall");
    /* the recvbuf of a reduce is only needed on the root */
    if (rank == 0)
        EXPECT_INVALID(pride_reduce(ctx, buf, NULL, 3, PRIDE_FLOAT32, PRIDE_SUM, 0),
                       "pride_reduce");

    /* none of that took a collective slot: the context still works */
    for (int i = 0; i < 4; i++)
        buf[i] = rank + 1;
    HCHECK_OK(ctx, pride_allreduce(ctx, buf, out, 4, PRIDE_FLOAT64, PRIDE_SUM));
    for (int i = 0; i < 4; i++)
        HCHECK(out[i] == P * (P + 1) / 2.0);
    HCHECK_OK(ctx, pride_reduce(ctx, buf, rank == 1 % P ? out : NULL, 4, PRIDE_FLOAT64,
                                PRIDE_MAX, 1 % P));
    HCHECK_OK(ctx, pride_barrier(ctx));
    return 0;
}

static void test_invalid_args(void **state)
{
    (void)state;
    for (int P = 1; P <= 3; P++)
        assert_int_equal(harness_run(P, args_run, NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_args),
        cmocka_unit_test(test_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
