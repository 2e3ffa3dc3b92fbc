/*
 * tcp transport between real processes: every pair, sizes from 0 B to 64 MiB, tags
 * matched out of order, a peer killed mid-transfer, a garbage frame, an abort from
 * another thread, a deadline, and configurations pride_init must refuse.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>

#include "coll.h"
#include "harness.h"
#include "tcp.h"

static void fill(uint8_t *b, size_t n, int from, int to, size_t len)
{
    uint64_t s = ((uint64_t)from << 40) ^ ((uint64_t)to << 20) ^ len;
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0)
            s = harness_rand(&s);
        b[i] = (uint8_t)(s >> (8 * (i % 8)));
    }
}

/* Every rank sends a distinct message of len bytes to every other rank at once. */
static int all_pairs(pride_context_t *ctx, int rank, int n, void *arg)
{
    size_t len = *(size_t *)arg;
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, len, -1));
    uint8_t **sb = calloc((size_t)n, sizeof *sb), **rb = calloc((size_t)n, sizeof *rb);
    struct pride_xfer *x = calloc(2 * (size_t)n, sizeof *x);
    struct pride_xfer **xs = calloc(2 * (size_t)n, sizeof *xs);
    HCHECK(sb && rb && x && xs);
    for (int p = 0; p < n; p++) {
        if (p == rank)
            continue;
        sb[p] = malloc(len ? len : 1);
        rb[p] = malloc(len ? len : 1);
        HCHECK(sb[p] && rb[p]);
        fill(sb[p], len, rank, p, len);
        HCHECK_OK(ctx, coll_irecv(&c, &x[2 * p], p, 7, rb[p], len));
        xs[2 * p] = &x[2 * p];
    }
    for (int p = 0; p < n; p++) {
        if (p == rank)
            continue;
        HCHECK_OK(ctx, coll_isend(&c, &x[2 * p + 1], p, 7, sb[p], len));
        xs[2 * p + 1] = &x[2 * p + 1];
    }
    HCHECK_OK(ctx, coll_end(&c, coll_wait(&c, xs, 2 * n)));
    uint8_t *want = malloc(len ? len : 1);
    HCHECK(want);
    for (int p = 0; p < n; p++) {
        if (p == rank)
            continue;
        fill(want, len, p, rank, len);
        HCHECK(memcmp(want, rb[p], len) == 0);
        free(sb[p]);
        free(rb[p]);
    }
    pride_stats_t st = PRIDE_STATS_INIT;
    HCHECK_OK(ctx, pride_get_stats(ctx, &st));
    HCHECK(st.bytes_sent >= (unsigned long long)len * (unsigned long long)(n - 1));
    free(want);
    free(sb);
    free(rb);
    free(x);
    free(xs);
    return 0;
}

static void test_all_pairs(void **state)
{
    (void)state;
    static const size_t small[] = {0, 1, 4096, 1 << 20};
    for (int n = 2; n <= 8; n++)
        for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
            size_t len = small[i];
            assert_int_equal(harness_run(n, all_pairs, &len, NULL), 0);
        }
    size_t big = 64u << 20;
    for (int n = 2; n <= 4; n++)
        assert_int_equal(harness_run(n, all_pairs, &big, NULL), 0);
}

/* Rank 0 sends tags 0..15; rank 1 posts them in a scrambled order, some before and
   some after the frames arrive. */
static int out_of_order(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    enum { K = 16, LEN = 1000 };
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1));
    static uint8_t buf[K][LEN];
    struct pride_xfer x[K];
    struct pride_xfer *xs[K];
    if (rank == 0) {
        for (int t = 0; t < K; t++) {
            memset(buf[t], t + 1, LEN);
            HCHECK_OK(ctx, coll_isend(&c, &x[t], 1, (uint32_t)t, buf[t], LEN));
            xs[t] = &x[t];
        }
        HCHECK_OK(ctx, coll_wait(&c, xs, K));
    } else {
        static const int order[K] = {15, 3, 9, 0, 12, 7, 1, 14, 5, 10, 2, 13, 8, 4, 11, 6};
        for (int i = 0; i < K; i++) {
            int t = order[i];
            HCHECK_OK(ctx, coll_irecv(&c, &x[i], 0, (uint32_t)t, buf[t], LEN));
            xs[i] = &x[i];
            if (i == K / 2) { /* let the rest arrive unexpected */
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        HCHECK_OK(ctx, coll_wait(&c, xs, K));
        for (int t = 0; t < K; t++)
            for (int i = 0; i < LEN; i++)
                HCHECK(buf[t][i] == t + 1);
    }
    return coll_end(&c, PRIDE_OK);
}

static void test_out_of_order_tags(void **state)
{
    (void)state;
    assert_int_equal(harness_run(2, out_of_order, NULL, NULL), 0);
}

/* Frames that come before their receive are buffered, counted in the stats, and
   delivered intact, also when the buffer is a reused one from an earlier frame
   (bigger, holding its old bytes). Rank 0 sends tag 1, then tag 2 on the same
   stream; rank 1 waits for tag 2 first, so tag 1 is in before its receive. */
static int unexpected_reuse(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    static const size_t lens[] = {300000, 200000, 300000, 70000, 0, 1, 5u << 20, 4u << 20};
    enum { K = sizeof lens / sizeof lens[0] };
    HCHECK_OK(ctx, pride_reset_stats(ctx));
    unsigned long long msgs = 0, bytes = 0;
    for (int k = 0; k < K; k++) {
        size_t len = lens[k];
        struct coll c;
        HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, len, -1));
        uint8_t *buf = malloc(len + 1), one = 0;
        HCHECK(buf);
        struct pride_xfer x[3];
        struct pride_xfer *xs[3] = {&x[0], &x[1], &x[2]};
        if (rank == 0) { /* the next round only once rank 1 says it is done (tag 3) */
            fill(buf, len, k, 1, len);
            HCHECK_OK(ctx, coll_irecv(&c, &x[2], 1, 3, NULL, 0));
            HCHECK_OK(ctx, coll_isend(&c, &x[0], 1, 1, buf, len));
            HCHECK_OK(ctx, coll_isend(&c, &x[1], 1, 2, &one, 1));
            HCHECK_OK(ctx, coll_wait(&c, xs, 3));
        } else {
            HCHECK_OK(ctx, coll_irecv(&c, &x[1], 0, 2, &one, 1));
            HCHECK_OK(ctx, coll_wait(&c, &xs[1], 1));
            memset(buf, 0xa5, len + 1);
            HCHECK_OK(ctx, coll_irecv(&c, &x[0], 0, 1, buf, len));
            HCHECK_OK(ctx, coll_wait(&c, xs, 1));
            uint8_t *want = malloc(len + 1);
            HCHECK(want);
            fill(want, len, k, 1, len);
            HCHECK(memcmp(want, buf, len) == 0);
            HCHECK(buf[len] == 0xa5);
            free(want);
            /* tag 1 came unexpected; tag 2 too if rank 0 was first */
            pride_stats_t st = PRIDE_STATS_INIT;
            HCHECK_OK(ctx, pride_get_stats(ctx, &st));
            unsigned long long dm = st.unexpected_messages - msgs, db = st.unexpected_bytes - bytes;
            HCHECK((dm == 1 && db == len) || (dm == 2 && db == len + 1));
            msgs = st.unexpected_messages;
            bytes = st.unexpected_bytes;
            HCHECK_OK(ctx, coll_isend(&c, &x[2], 0, 3, NULL, 0));
            HCHECK_OK(ctx, coll_wait(&c, &xs[2], 1));
        }
        HCHECK_OK(ctx, coll_end(&c, PRIDE_OK));
        free(buf);
    }
    return 0;
}

static void test_unexpected_reuse(void **state)
{
    (void)state;
    assert_int_equal(harness_run(2, unexpected_reuse, NULL, NULL), 0);
}

/* The receiver of a large message dies; the sender must get PEER, not hang. */
static int receiver_dies(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    size_t len = 256u << 20;
    if (rank == 1) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        raise(SIGKILL);
    }
    char *buf = calloc(1, len);
    HCHECK(buf);
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, len, -1));
    struct pride_xfer x;
    int st = coll_isend(&c, &x, 1, 0, buf, len);
    if (st == PRIDE_OK) {
        struct pride_xfer *xs[1] = {&x};
        st = coll_wait(&c, xs, 1);
    }
    st = coll_end(&c, st);
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_PEER || st == PRIDE_ERR_TIMEOUT);
    HCHECK(strstr(pride_last_error(ctx), "rank 1") != NULL);
    /* the context stays failed: the next call fails at once */
    HCHECK(coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1) == st);
    free(buf);
    return 0;
}

/* Sends at most 1 MiB in all, then kills its process: whatever the scheduling, the
   peer sees the connection end in the middle of the frame. */
static ssize_t sendmsg_then_die(void *user, int fd, const struct msghdr *m, int flags)
{
    (void)user;
    static size_t sent;
    const size_t cap = 1u << 20;
    if (sent >= cap)
        raise(SIGKILL);
    struct iovec iov[8];
    struct msghdr mh = *m;
    size_t room = cap - sent, k = 0;
    for (; k < m->msg_iovlen && k < 8 && room; k++) {
        iov[k] = m->msg_iov[k];
        if (iov[k].iov_len > room)
            iov[k].iov_len = room;
        room -= iov[k].iov_len;
    }
    mh.msg_iov = iov;
    mh.msg_iovlen = k;
    ssize_t r = sendmsg(fd, &mh, flags);
    if (r > 0)
        sent += (size_t)r;
    return r;
}

/* The sender dies in the middle of a frame; the receiver must get PEER. */
static int sender_dies(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    size_t len = 256u << 20;
    char *buf = calloc(1, len);
    HCHECK(buf);
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, len, -1));
    struct pride_xfer x;
    if (rank == 1) {
        ctx->tp->sys.sendmsg = sendmsg_then_die;
        HCHECK_OK(ctx, coll_isend(&c, &x, 0, 0, buf, len));
        struct pride_xfer *xs[1] = {&x};
        coll_wait(&c, xs, 1); /* dies in here at the latest */
        HCHECK(!"the sender outlived its 1 MiB");
    }
    int st = coll_irecv(&c, &x, 1, 0, buf, len);
    if (st == PRIDE_OK) {
        struct pride_xfer *xs[1] = {&x};
        st = coll_wait(&c, xs, 1);
    }
    st = coll_end(&c, st);
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_PEER);
    HCHECK(strstr(pride_last_error(ctx), "rank 1") != NULL);
    free(buf);
    return 0;
}

static void test_peer_killed(void **state)
{
    (void)state;
    struct harness_opts o = {.timeout_ms = 10000};
    /* rank 1 is killed on purpose: the harness counts it as one failure */
    assert_int_equal(harness_run(2, receiver_dies, NULL, &o), 1);
    assert_int_equal(harness_run(2, sender_dies, NULL, &o), 1);
}

/* Rank 1 writes junk on its socket to rank 0 where a frame header should be. */
static int garbage_frame(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1));
    if (rank == 1) {
        char junk[48];
        memset(junk, 0x5a, sizeof junk);
        HCHECK(send(ctx->tp->peers[0].fd, junk, sizeof junk, MSG_NOSIGNAL) == sizeof junk);
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
        return 0;
    }
    char buf[16];
    struct pride_xfer x;
    int st = coll_irecv(&c, &x, 1, 0, buf, sizeof buf);
    if (st == PRIDE_OK) {
        struct pride_xfer *xs[1] = {&x};
        st = coll_wait(&c, xs, 1);
    }
    st = coll_end(&c, st);
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_PEER);
    HCHECK(strstr(pride_last_error(ctx), "malformed") != NULL);
    return 0;
}

static void test_garbage_frame(void **state)
{
    (void)state;
    assert_int_equal(harness_run(2, garbage_frame, NULL, NULL), 0);
}

struct abort_arg {
    pride_context_t *ctx;
};

static void *abort_later(void *p)
{
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    pride_abort(((struct abort_arg *)p)->ctx);
    return NULL;
}

/* A receive nobody answers: pride_abort from another thread wakes it. */
static int abort_wakes(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    if (rank == 1) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        return 0;
    }
    struct abort_arg a = {ctx};
    pthread_t th;
    HCHECK(pthread_create(&th, NULL, abort_later, &a) == 0);
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1));
    char buf[8];
    struct pride_xfer x;
    HCHECK_OK(ctx, coll_irecv(&c, &x, 1, 0, buf, sizeof buf));
    struct pride_xfer *xs[1] = {&x};
    int st = coll_end(&c, coll_wait(&c, xs, 1));
    pthread_join(th, NULL);
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_ABORTED);
    return 0;
}

/* A receive nobody answers ends with TIMEOUT at its deadline, naming the peer. */
static int times_out(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    if (rank == 1) {
        struct timespec ts = {1, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
        return 0;
    }
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1));
    char buf[8];
    struct pride_xfer x;
    HCHECK_OK(ctx, coll_irecv(&c, &x, 1, 0, buf, sizeof buf));
    struct pride_xfer *xs[1] = {&x};
    int st = coll_end(&c, coll_wait(&c, xs, 1));
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_TIMEOUT);
    HCHECK(strstr(pride_last_error(ctx), "waiting for rank 1") != NULL);
    return 0;
}

static void test_abort_and_timeout(void **state)
{
    (void)state;
    assert_int_equal(harness_run(2, abort_wakes, NULL, NULL), 0);
    struct harness_opts o = {.timeout_ms = 500};
    assert_int_equal(harness_run(2, times_out, NULL, &o), 0);
}

static void test_invalid_config(void **state)
{
    (void)state;
    pride_context_t *ctx = NULL;
    assert_int_equal(pride_init(NULL, NULL), PRIDE_ERR_INVALID);
    pride_config_t c = PRIDE_CONFIG_INIT;
    c.rank = 3;
    c.nranks = 2;
    assert_int_equal(pride_init(&c, &ctx), PRIDE_ERR_INVALID);
    c.rank = 0;
    c.nranks = 0;
    assert_int_equal(pride_init(&c, &ctx), PRIDE_ERR_INVALID);
    c.nranks = 2; /* no store anywhere */
    unsetenv("PRIDE_STORE");
    assert_int_equal(pride_init(&c, &ctx), PRIDE_ERR_INVALID);
    c.nranks = 1;
    c.transport = "carrier-pigeon";
    assert_int_equal(pride_init(&c, &ctx), PRIDE_ERR_TRANSPORT);
    c.transport = NULL;
    c.size = 3;
    assert_int_equal(pride_init(&c, &ctx), PRIDE_ERR_INVALID);
    c.size = sizeof c;
    setenv("PRIDE_ALLREDUCE_ALGO", "bogus", 1);
    assert_int_equal(pride_init(&c, &ctx), PRIDE_ERR_INVALID);
    unsetenv("PRIDE_ALLREDUCE_ALGO");
    setenv("PRIDE_RANK", "x", 1);
    assert_int_equal(pride_init(NULL, &ctx), PRIDE_ERR_INVALID);
    unsetenv("PRIDE_RANK");
    assert_null(ctx);
    assert_int_equal(pride_rank(NULL), PRIDE_ERR_INVALID);
    assert_int_equal(pride_nranks(NULL), PRIDE_ERR_INVALID);
    assert_int_equal(pride_finalize(NULL), PRIDE_ERR_INVALID);
    assert_int_equal(pride_abort(NULL), PRIDE_ERR_INVALID);
    assert_string_equal(pride_strerror(PRIDE_ERR_MISMATCH),
                        "ranks disagree on a collective's arguments");
    assert_string_equal(pride_strerror(12345), "unknown status");
    assert_int_equal(pride_dtype_size(PRIDE_BFLOAT16), 2);
    assert_int_equal(pride_dtype_size((pride_dtype_t)99), 0);
}

/* No environment at all: a job of one. */
static void test_singleton(void **state)
{
    (void)state;
    static const char *const vars[] = {"PRIDE_RANK", "PRIDE_NRANKS", "SLURM_PROCID",
                                       "SLURM_NTASKS", "OMPI_COMM_WORLD_RANK",
                                       "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    pride_context_t *ctx = NULL;
    assert_int_equal(pride_init(NULL, &ctx), PRIDE_OK);
    assert_int_equal(pride_rank(ctx), 0);
    assert_int_equal(pride_nranks(ctx), 1);
    assert_string_equal(pride_last_error(ctx), "");
    assert_int_equal(pride_finalize(ctx), PRIDE_OK);
}

/* Ranks from Slurm's variables when PRIDE_RANK is unset. */
static int slurm_child(int rank, int n, const char *store, void *arg)
{
    (void)arg;
    char r[16], s[16];
    snprintf(r, sizeof r, "%d", rank);
    snprintf(s, sizeof s, "%d", n);
    unsetenv("PRIDE_RANK");
    unsetenv("PRIDE_NRANKS");
    setenv("SLURM_PROCID", r, 1);
    setenv("SLURM_NTASKS", s, 1);
    setenv("PRIDE_STORE", store, 1);
    pride_context_t *ctx = NULL;
    HCHECK_OK(NULL, pride_init(NULL, &ctx));
    HCHECK(pride_rank(ctx) == rank && pride_nranks(ctx) == n);
    pride_finalize(ctx);
    return 0;
}

static void test_launcher_env(void **state)
{
    (void)state;
    assert_int_equal(harness_fork(3, slurm_child, NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_config),
        cmocka_unit_test(test_singleton),
        cmocka_unit_test(test_launcher_env),
        cmocka_unit_test(test_all_pairs),
        cmocka_unit_test(test_out_of_order_tags),
        cmocka_unit_test(test_unexpected_reuse),
        cmocka_unit_test(test_garbage_frame),
        cmocka_unit_test(test_abort_and_timeout),
        cmocka_unit_test(test_peer_killed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
