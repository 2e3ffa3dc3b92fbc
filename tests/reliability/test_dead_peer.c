/*
 * A rank killed with SIGKILL in the middle of a collective (point-to-point exchanges,
 * allreduce small and large, barrier, broadcast): every other rank's call
 * returns PRIDE_ERR_PEER or PRIDE_ERR_TIMEOUT within the timeout (plus a second),
 * its last error names the dead rank and the collective, and every later call fails
 * at once with the same status. The same with ranks configured by hand through
 * PRIDE_RANK / PRIDE_NRANKS / PRIDE_STORE instead of the config struct.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"
#include "rel.h"

#define TIMEOUT_MS 5000

struct victim {
    int nranks;
    int rank;         /* the rank that dies */
    int after_ms;     /* this long after its first call starts */
    size_t count;     /* elements per call */
    const char *coll; /* "point-to-point", "allreduce", "barrier" or "broadcast": what
                         runs, and what the survivors' error must name */
};

/* One call of the victim's collective; the data is checked where it is cheap. */
static int one_call(pride_context_t *ctx, const struct victim *v, float *buf, int i)
{
    if (!strcmp(v->coll, "allreduce")) {
        for (size_t j = 0; j < v->count; j++)
            buf[j] = 1.0f;
        int st = pride_allreduce(ctx, buf, buf, v->count, PRIDE_FLOAT32, PRIDE_SUM);
        if (st == PRIDE_OK && (buf[0] != (float)v->nranks || buf[v->count - 1] != (float)v->nranks))
            return REL_WRONG;
        return st;
    }
    if (!strcmp(v->coll, "barrier"))
        return pride_barrier(ctx);
    if (!strcmp(v->coll, "broadcast")) {
        int root = i % v->nranks;
        buf[0] = pride_rank(ctx) == root ? (float)i : -1.0f;
        int st = pride_broadcast(ctx, buf, v->count, PRIDE_FLOAT32, root);
        return st == PRIDE_OK && buf[0] != (float)i ? REL_WRONG : st;
    }
    return rel_check_sum(ctx, v->count, 1);
}

static void *killer(void *arg)
{
    const struct victim *v = arg;
    struct timespec ts = {v->after_ms / 1000, (long)(v->after_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    raise(SIGKILL);
    return NULL;
}

static int64_t now_ms(void)
{
    return pride_now_ns() / 1000000;
}

/* Collectives until one fails; the victim dies during them. */
static int victim_run(pride_context_t *ctx, int rank, const struct victim *v)
{
    pthread_t th;
    if (rank == v->rank)
        HCHECK(pthread_create(&th, NULL, killer, (void *)v) == 0);
    float *buf = malloc(v->count * sizeof *buf);
    HCHECK(buf);
    int st = PRIDE_OK;
    int64_t t0 = 0;
    for (int i = 0; i < 1000000 && st == PRIDE_OK; i++) {
        t0 = now_ms();
        st = one_call(ctx, v, buf, i);
    }
    HCHECK(rank != v->rank); /* the victim never gets here */
    const char *e = pride_last_error(ctx);
    char dead[32];
    snprintf(dead, sizeof dead, "rank %d", v->rank);
    if (st != PRIDE_ERR_PEER && st != PRIDE_ERR_TIMEOUT)
        fprintf(stderr, "rank %d: %s: %s\n", rank, pride_strerror(st), e);
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_PEER || st == PRIDE_ERR_TIMEOUT);
    HCHECK(now_ms() - t0 <= TIMEOUT_MS + 1000);
    if (!strstr(e, dead) || !strstr(e, v->coll))
        fprintf(stderr, "rank %d: the error does not name %s and %s: %s\n", rank, dead, v->coll,
                e);
    HCHECK(strstr(e, dead) && strstr(e, v->coll));
    t0 = now_ms();
    for (int i = 0; i < 3; i++)
        HCHECK(one_call(ctx, v, buf, i) == st);
    HCHECK(now_ms() - t0 < TIMEOUT_MS);
    free(buf);
    return 0;
}

static int victim_rank(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    return victim_run(ctx, rank, arg);
}

/* The same, configured only through the environment. */
static int by_hand_rank(int rank, int n, const char *store, void *arg)
{
    char s[32];
    snprintf(s, sizeof s, "%d", rank);
    setenv("PRIDE_RANK", s, 1);
    snprintf(s, sizeof s, "%d", n);
    setenv("PRIDE_NRANKS", s, 1);
    setenv("PRIDE_STORE", store, 1);
    snprintf(s, sizeof s, "%d", TIMEOUT_MS);
    setenv("PRIDE_TIMEOUT_MS", s, 1);
    pride_context_t *ctx;
    HCHECK_OK(NULL, pride_init(NULL, &ctx));
    int rc = victim_run(ctx, rank, arg);
    pride_finalize(ctx);
    return rc;
}

static void kill_one(const struct victim *v, int by_hand)
{
    struct harness_opts o = {.timeout_ms = TIMEOUT_MS, .guard_s = 120};
    int fails = by_hand ? harness_fork(v->nranks, by_hand_rank, (void *)v, &o)
                        : harness_run(v->nranks, victim_rank, (void *)v, &o);
    assert_int_equal(fails, 1); /* the victim, killed */
}

static void test_killed_in_collectives(void **state)
{
    (void)state;
    struct victim large = {4, 1, 300, 4 << 20, "allreduce"};
    kill_one(&large, 0);
    struct victim small = {4, 3, 100, 100, "allreduce"};
    kill_one(&small, 0);
    struct victim odd = {3, 1, 200, 1 << 20, "allreduce"};
    kill_one(&odd, 1);
    struct victim barrier = {4, 0, 100, 1, "barrier"};
    kill_one(&barrier, 0);
    struct victim barrier5 = {5, 4, 150, 1, "barrier"};
    kill_one(&barrier5, 1);
    struct victim bcast = {4, 2, 150, 1 << 18, "broadcast"};
    kill_one(&bcast, 0);
    struct victim bcast_small = {3, 0, 100, 10, "broadcast"};
    kill_one(&bcast_small, 1);
}

static void test_killed_in_exchange(void **state)
{
    (void)state;
    struct victim big = {4, 2, 150, 1 << 20, "point-to-point"};
    kill_one(&big, 0);
    struct victim small = {3, 0, 100, 16, "point-to-point"};
    kill_one(&small, 0);
    struct victim last = {4, 3, 50, 4096, "point-to-point"};
    kill_one(&last, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_killed_in_exchange),
        cmocka_unit_test(test_killed_in_collectives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
