/*
 * The verbs transport between real processes, on the software model of the verbs
 * calls (PRIDE_VERBS_MODEL: no RDMA device exists here): every pair at sizes from 0 B
 * through the eager limit and the first rendezvous size to 16 MiB, tags matched out
 * of order (eager frames and rendezvous requests that come before their receive),
 * a burst of small messages that runs the credits dry, 64 rendezvous messages each
 * way at once (both sides out of credits), mismatched lengths, junk
 * where a message header should be, a deadline, an abort, a peer killed, a queue pair forced into the error state in
 * the middle of a transfer, an rkey the responder refuses; and, on the real
 * libraries, the sentence a host without an RDMA device gets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#ifdef PRIDE_HAVE_VERBS

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "coll.h"
#include "harness.h"
#include "verbs.h"

static char fabric[64];
static const struct harness_opts verbs_opts = {.transport = "verbs"};

static void fill(uint8_t *b, size_t n, int from, int to, size_t len)
{
    uint64_t s = ((uint64_t)from << 40) ^ ((uint64_t)to << 20) ^ len;
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0)
            s = harness_rand(&s);
        b[i] = (uint8_t)(s >> (8 * (i % 8)));
    }
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Send one message of len from -> to and wait; both ranks call it. */
static int p2p(pride_context_t *ctx, int from, int to, uint32_t tag, void *buf, size_t len,
               int count)
{
    struct coll c;
    int st = coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, (size_t)count, -1);
    if (st)
        return st;
    struct pride_xfer x;
    if (ctx->rank == from)
        st = coll_isend(&c, &x, to, tag, buf, len);
    else
        st = coll_irecv(&c, &x, from, tag, buf, len);
    if (st == PRIDE_OK) {
        struct pride_xfer *xs[1] = {&x};
        st = coll_wait(&c, xs, 1);
    }
    return coll_end(&c, st);
}

/* ---- every pair ---- */

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
    /* payload bytes only, as tcp counts them */
    pride_stats_t st = PRIDE_STATS_INIT;
    HCHECK_OK(ctx, pride_get_stats(ctx, &st));
    HCHECK(st.bytes_sent == (unsigned long long)len * (unsigned long long)(n - 1));
    HCHECK(st.bytes_received == (unsigned long long)len * (unsigned long long)(n - 1));
    HCHECK(st.messages_sent == (unsigned long long)(n - 1));
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
    static const size_t sizes[] = {0, 1, VERBS_EAGER_MAX, VERBS_EAGER_MAX + 1, 1 << 20};
    for (int n = 2; n <= 8; n++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t len = sizes[i];
            assert_int_equal(harness_run(n, all_pairs, &len, &verbs_opts), 0);
        }
    size_t big = 16u << 20;
    for (int n = 2; n <= 4; n++)
        assert_int_equal(harness_run(n, all_pairs, &big, &verbs_opts), 0);
}

/* ---- matching ---- */

/* Rank 0 sends tags 0..K-1, half eager and half rendezvous; rank 1 posts them in a
   scrambled order, some before and some after the frames (or RTS) arrive. */
static int out_of_order(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    enum { K = 16 };
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1));
    static uint8_t *buf[K];
    size_t len[K];
    struct pride_xfer x[K];
    struct pride_xfer *xs[K];
    for (int t = 0; t < K; t++) {
        len[t] = t % 2 ? 100000 + (size_t)t : 1000 + (size_t)t;
        buf[t] = calloc(1, len[t]);
        HCHECK(buf[t]);
    }
    if (rank == 0) {
        for (int t = 0; t < K; t++) {
            memset(buf[t], t + 1, len[t]);
            HCHECK_OK(ctx, coll_isend(&c, &x[t], 1, (uint32_t)t, buf[t], len[t]));
            xs[t] = &x[t];
        }
        HCHECK_OK(ctx, coll_wait(&c, xs, K));
    } else {
        static const int order[K] = {15, 3, 9, 0, 12, 7, 1, 14, 5, 10, 2, 13, 8, 4, 11, 6};
        for (int i = 0; i < K; i++) {
            int t = order[i];
            HCHECK_OK(ctx, coll_irecv(&c, &x[i], 0, (uint32_t)t, buf[t], len[t]));
            xs[i] = &x[i];
            if (i == K / 2)
                nap_ms(50); /* let the rest arrive unexpected */
        }
        HCHECK_OK(ctx, coll_wait(&c, xs, K));
        for (int t = 0; t < K; t++)
            for (size_t i = 0; i < len[t]; i++)
                HCHECK(buf[t][i] == t + 1);
    }
    for (int t = 0; t < K; t++)
        free(buf[t]);
    return coll_end(&c, PRIDE_OK);
}

static void test_out_of_order_tags(void **state)
{
    (void)state;
    assert_int_equal(harness_run(2, out_of_order, NULL, &verbs_opts), 0);
}

/* Rank 0 posts far more small sends than it has credits before rank 1 posts a single
   receive: the sends wait for credits, the frames wait unexpected, all arrive. */
static int credit_storm(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    enum { K = 1000, LEN = 64 };
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1));
    uint8_t(*buf)[LEN] = calloc(K, LEN);
    struct pride_xfer *x = calloc(2 * K, sizeof *x);
    struct pride_xfer **xs = calloc(2 * K, sizeof *xs);
    HCHECK(buf && x && xs);
    int peer = 1 - rank;
    if (rank == 1)
        nap_ms(100);
    for (int t = 0; t < K; t++) {
        if (rank == 0)
            memset(buf[t], (uint8_t)t, LEN);
        if (rank == 0)
            HCHECK_OK(ctx, coll_isend(&c, &x[t], peer, (uint32_t)t, buf[t], LEN));
        else
            HCHECK_OK(ctx, coll_irecv(&c, &x[t], peer, (uint32_t)t, buf[t], LEN));
        xs[t] = &x[t];
    }
    /* and the other way at the same time, one rendezvous among them */
    static uint8_t back[200000];
    if (rank == 1)
        HCHECK_OK(ctx, coll_isend(&c, &x[K], peer, K, back, sizeof back));
    else
        HCHECK_OK(ctx, coll_irecv(&c, &x[K], peer, K, back, sizeof back));
    xs[K] = &x[K];
    HCHECK_OK(ctx, coll_end(&c, coll_wait(&c, xs, K + 1)));
    for (int t = 0; t < K; t++)
        for (int i = 0; i < LEN; i++)
            HCHECK(buf[t][i] == (uint8_t)t);
    free(buf);
    free(x);
    free(xs);
    return 0;
}

static void test_credit_storm(void **state)
{
    (void)state;
    assert_int_equal(harness_run(2, credit_storm, NULL, &verbs_opts), 0);
}

/* Both ranks post 64 rendezvous sends and 64 receives to each other at once: the
   RTS and CTS messages use up both sides' credits, and only a CREDIT message sent
   past a queue that waits for credits lets either go on. */
static int rendezvous_both_ways(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    enum { K = 64, LEN = 4 * VERBS_EAGER_MAX };
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, LEN, -1));
    uint8_t *sb = malloc((size_t)K * LEN), *rb = malloc((size_t)K * LEN);
    uint8_t *want = malloc(LEN);
    struct pride_xfer *x = calloc(2 * K, sizeof *x);
    struct pride_xfer **xs = calloc(2 * K, sizeof *xs);
    HCHECK(sb && rb && want && x && xs);
    int peer = 1 - rank;
    for (int t = 0; t < K; t++) {
        HCHECK_OK(ctx, coll_irecv(&c, &x[t], peer, (uint32_t)t, rb + (size_t)t * LEN, LEN));
        xs[t] = &x[t];
    }
    for (int t = 0; t < K; t++) {
        fill(sb + (size_t)t * LEN, LEN, rank, peer, (size_t)t);
        HCHECK_OK(ctx, coll_isend(&c, &x[K + t], peer, (uint32_t)t, sb + (size_t)t * LEN, LEN));
        xs[K + t] = &x[K + t];
    }
    HCHECK_OK(ctx, coll_end(&c, coll_wait(&c, xs, 2 * K)));
    for (int t = 0; t < K; t++) {
        fill(want, LEN, peer, rank, (size_t)t);
        HCHECK(memcmp(want, rb + (size_t)t * LEN, LEN) == 0);
    }
    free(sb);
    free(rb);
    free(want);
    free(x);
    free(xs);
    return 0;
}

static void test_rendezvous_both_ways(void **state)
{
    (void)state;
    struct harness_opts o = verbs_opts;
    o.timeout_ms = 10000;
    assert_int_equal(harness_run(2, rendezvous_both_ways, NULL, &o), 0);
}

/* The receiver expects another length or another collective: MISMATCH with a
   sentence on the receiver, and the sender hears of it. */
static int mismatch(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    size_t big = *(size_t *)arg;
    size_t want = rank == 0 ? big : big + 8;
    char *buf = calloc(1, big + 8);
    HCHECK(buf);
    int st = p2p(ctx, 0, 1, 0, buf, want, 1);
    free(buf);
    if (rank == 1) {
        HCHECK_STATUS(ctx, st, st == PRIDE_ERR_MISMATCH);
        HCHECK(strstr(pride_last_error(ctx), "this rank expected") != NULL);
    } else {
        HCHECK_STATUS(ctx, st, st == PRIDE_ERR_MISMATCH || st == PRIDE_OK);
        if (st == PRIDE_OK) /* an eager send completes at once; the next wait hears of it */
            st = p2p(ctx, 1, 0, 1, NULL, 0, 1);
        HCHECK_STATUS(ctx, st, st == PRIDE_ERR_MISMATCH);
        HCHECK(strstr(pride_last_error(ctx), "rank 1") != NULL);
    }
    return 0;
}

/* Same length, different collective arguments. */
static int meta_mismatch(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    char buf[20000];
    int st = p2p(ctx, 0, 1, 0, buf, sizeof buf, rank == 0 ? 5 : 6);
    if (rank == 1) {
        HCHECK_STATUS(ctx, st, st == PRIDE_ERR_MISMATCH);
        HCHECK(strstr(pride_last_error(ctx), "count") != NULL);
    } else {
        HCHECK_STATUS(ctx, st, st == PRIDE_ERR_MISMATCH);
    }
    return 0;
}

static void test_mismatch(void **state)
{
    (void)state;
    size_t eager = 100, rdv = 1 << 20;
    assert_int_equal(harness_run(2, mismatch, &eager, &verbs_opts), 0);
    assert_int_equal(harness_run(2, mismatch, &rdv, &verbs_opts), 0);
    assert_int_equal(harness_run(2, meta_mismatch, NULL, &verbs_opts), 0);
}

/* Rank 1 sends junk straight on its queue pair to rank 0, where a message header
   should be: rank 0 fails with PEER, calling it malformed. */
static int garbage_message(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    if (rank == 1) {
        static char junk[100];
        memset(junk, 0x5a, sizeof junk);
        struct pride_tp *tp = ctx->tp;
        pthread_mutex_lock(&tp->mu);
        struct ibv_mr *mr = tp->api->reg_mr(tp->pd, junk, sizeof junk, 0);
        HCHECK(mr);
        struct ibv_sge sge = {(uintptr_t)junk, sizeof junk, mr->lkey};
        /* a write-kind id the backend does not know: it only counts the completion */
        struct ibv_send_wr wr = {.wr_id = (uint64_t)VERBS_WR_WRITE << 56 | 0xffffu,
                                 .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND,
                                 .send_flags = IBV_SEND_SIGNALED},
                           *bad;
        tp->peers[0].sq_used++;
        HCHECK(tp->api->post_send(tp->peers[0].qp, &wr, &bad) == 0);
        pthread_mutex_unlock(&tp->mu);
        nap_ms(300);
        pthread_mutex_lock(&tp->mu);
        tp->api->dereg_mr(mr);
        pthread_mutex_unlock(&tp->mu);
        return 0;
    }
    char buf[16];
    int st = p2p(ctx, 1, 0, 0, buf, sizeof buf, 1);
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_PEER);
    HCHECK(strstr(pride_last_error(ctx), "rank 1 sent a malformed message") != NULL);
    return 0;
}

static void test_garbage_message(void **state)
{
    (void)state;
    assert_int_equal(harness_run(2, garbage_message, NULL, &verbs_opts), 0);
}

/* ---- waiting ---- */

struct abort_arg {
    pride_context_t *ctx;
};

static void *abort_later(void *p)
{
    nap_ms(100);
    pride_abort(((struct abort_arg *)p)->ctx);
    return NULL;
}

static int abort_wakes(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    if (rank == 1) {
        nap_ms(1000);
        return 0;
    }
    struct abort_arg a = {ctx};
    pthread_t th;
    HCHECK(pthread_create(&th, NULL, abort_later, &a) == 0);
    char buf[8];
    int st = p2p(ctx, 1, 0, 0, buf, sizeof buf, 1);
    pthread_join(th, NULL);
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_ABORTED);
    return 0;
}

static int times_out(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    if (rank == 1) {
        nap_ms(1500);
        return 0;
    }
    char buf[8];
    int st = p2p(ctx, 1, 0, 0, buf, sizeof buf, 1);
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_TIMEOUT);
    HCHECK(strstr(pride_last_error(ctx), "waiting for rank 1") != NULL);
    return 0;
}

static void test_abort_and_timeout(void **state)
{
    (void)state;
    assert_int_equal(harness_run(2, abort_wakes, NULL, &verbs_opts), 0);
    struct harness_opts o = verbs_opts;
    o.timeout_ms = 500;
    assert_int_equal(harness_run(2, times_out, NULL, &o), 0);
}

/* ---- faults ---- */

/* The receiver of a large message dies before it answers: PEER naming it. */
static int receiver_dies(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    size_t len = 64u << 20;
    if (rank == 1) {
        nap_ms(200);
        raise(SIGKILL);
    }
    char *buf = calloc(1, len);
    HCHECK(buf);
    int st = p2p(ctx, 0, 1, 0, buf, len, 1);
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_PEER);
    HCHECK(strstr(pride_last_error(ctx), "rank 1") != NULL);
    struct coll c; /* the context stays failed */
    HCHECK(coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1) == st);
    free(buf);
    return 0;
}

/* The sender dies after posting: the receiver gets PEER naming it. */
static int sender_dies(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    size_t len = 64u << 20;
    char *buf = calloc(1, len);
    HCHECK(buf);
    if (rank == 1) {
        struct coll c;
        struct pride_xfer x;
        HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 1, -1));
        HCHECK_OK(ctx, coll_isend(&c, &x, 0, 0, buf, len));
        nap_ms(50);
        raise(SIGKILL);
    }
    int st = p2p(ctx, 1, 0, 0, buf, len, 1);
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_PEER);
    HCHECK(strstr(pride_last_error(ctx), "rank 1") != NULL);
    free(buf);
    return 0;
}

static void test_peer_killed(void **state)
{
    (void)state;
    struct harness_opts o = verbs_opts;
    o.timeout_ms = 10000;
    /* rank 1 is killed on purpose: the harness counts it as one failure */
    assert_int_equal(harness_run(2, receiver_dies, NULL, &o), 1);
    assert_int_equal(harness_run(2, sender_dies, NULL, &o), 1);
}

/* Rank 1's queue pair to rank 0 enters the error state after arg bytes of a 16 MiB
   transfer have landed (or the responder refuses the rkey, arg 0): both ranks fail
   with PEER naming the other, the NIC's status named in the sentence. */
static int qp_fault(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    uint64_t after = *(uint64_t *)arg;
    size_t len = 16u << 20;
    char *buf = calloc(1, len);
    HCHECK(buf);
    if (rank == 1) {
        struct ibv_qp *qp = ctx->tp->peers[0].qp;
        if (after)
            HCHECK(verbs_model_inject(qp, VERBS_FAULT_QP_ERROR_AFTER, after) == 0);
        else
            HCHECK(verbs_model_inject(qp, VERBS_FAULT_BAD_RKEY, 0) == 0);
    }
    int st = p2p(ctx, 0, 1, 0, buf, len, 1);
    const char *e = pride_last_error(ctx);
    if (st != PRIDE_ERR_PEER || !strstr(e, rank == 0 ? "rank 1" : "rank 0"))
        fprintf(stderr, "rank %d: %s: %s\n", rank, pride_strerror(st), e);
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_PEER);
    HCHECK(strstr(e, rank == 0 ? "rank 1" : "rank 0") != NULL);
    /* Rank 0's write either runs out of retries against the dead QP, or is flushed
       when rank 1, failing, disconnects first: which comes first is a race, on a
       NIC as on the model. A refused rkey is refused before anything else. */
    if (rank == 0 && after)
        HCHECK(strstr(e, "retry") != NULL || strstr(e, "flush") != NULL);
    else if (rank == 0)
        HCHECK(strstr(e, "remote access error") != NULL);
    else
        HCHECK(strstr(e, "flush") != NULL);
    free(buf);
    return 0;
}

static void test_qp_error_mid_transfer(void **state)
{
    (void)state;
    uint64_t after = 4u << 20;
    assert_int_equal(harness_run(2, qp_fault, &after, &verbs_opts), 0);
}

static void test_rkey_violation(void **state)
{
    (void)state;
    uint64_t bad_rkey = 0;
    assert_int_equal(harness_run(2, qp_fault, &bad_rkey, &verbs_opts), 0);
}

/* ---- start-up ---- */

/* pride_verbs_ops.open on a context of one rank, for the sentence it leaves. */
static int open_alone(char *why, size_t wl)
{
    pride_context_t *ctx = calloc(1, sizeof *ctx);
    assert_non_null(ctx);
    pthread_mutex_init(&ctx->mu, NULL);
    ctx->nranks = 1;
    ctx->timeout_ms = 2000;
    snprintf(ctx->job, sizeof ctx->job, "pride");
    struct pride_tp *tp = NULL;
    int st = pride_verbs_ops.open(ctx, &tp);
    if (st == PRIDE_OK)
        pride_verbs_ops.close(tp);
    snprintf(why, wl, "%s", ctx->last_error);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx);
    return st;
}

static void test_no_device(void **state)
{
    (void)state;
    int n = 0;
    struct ibv_device **list = verbs_api_real.get_device_list(&n);
    if (list)
        verbs_api_real.free_device_list(list);
    if (n > 0)
        skip(); /* this host has an RDMA device: the real libraries would find it */
    unsetenv("PRIDE_VERBS_MODEL");
    char why[1024];
    assert_int_equal(open_alone(why, sizeof why), PRIDE_ERR_TRANSPORT);
    assert_non_null(strstr(why, "no RDMA device was found"));
    pride_config_t c = PRIDE_CONFIG_INIT;
    c.rank = 0;
    c.nranks = 1;
    c.transport = "verbs";
    pride_context_t *ctx = NULL;
    assert_int_equal(pride_init(&c, &ctx), PRIDE_ERR_TRANSPORT);
    assert_null(ctx);
    setenv("PRIDE_VERBS_MODEL", fabric, 1);
}

/* Device, port and GID choices on the model, which has model0 with one port whose
   GIDs 2 and 3 hold 127.0.0.1. */
static void test_device_choice(void **state)
{
    (void)state;
    char why[1024];
    assert_int_equal(open_alone(why, sizeof why), PRIDE_OK);
    setenv("PRIDE_IB_DEVICE", "mlx5_7", 1);
    assert_int_equal(open_alone(why, sizeof why), PRIDE_ERR_TRANSPORT);
    assert_non_null(strstr(why, "this host has: model0"));
    setenv("PRIDE_IB_DEVICE", "model0", 1);
    setenv("PRIDE_IB_PORT", "2", 1);
    assert_int_equal(open_alone(why, sizeof why), PRIDE_ERR_TRANSPORT);
    assert_non_null(strstr(why, "has no port 2"));
    setenv("PRIDE_IB_PORT", "one", 1);
    assert_int_equal(open_alone(why, sizeof why), PRIDE_ERR_INVALID);
    setenv("PRIDE_IB_PORT", "1", 1);
    setenv("PRIDE_IB_GID_INDEX", "0", 1);
    assert_int_equal(open_alone(why, sizeof why), PRIDE_ERR_TRANSPORT);
    assert_non_null(strstr(why, "holds no IPv4 address"));
    setenv("PRIDE_IB_GID_INDEX", "3", 1);
    assert_int_equal(open_alone(why, sizeof why), PRIDE_OK);
    unsetenv("PRIDE_IB_DEVICE");
    unsetenv("PRIDE_IB_PORT");
    unsetenv("PRIDE_IB_GID_INDEX");
    char bad[] = "/nonexistent-dir/\001/x";
    setenv("PRIDE_VERBS_MODEL", bad, 1);
    assert_int_equal(open_alone(why, sizeof why), PRIDE_ERR_TRANSPORT);
    assert_non_null(strstr(why, "PRIDE_VERBS_MODEL"));
    setenv("PRIDE_VERBS_MODEL", fabric, 1);
}

/* Two ranks whose PRIDE_IFNAME is not the fabric's address cannot listen. */
static int wrong_address(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)ctx;
    (void)rank;
    (void)n;
    (void)arg;
    return 1; /* never reached: pride_init must fail */
}

static void test_wrong_address(void **state)
{
    (void)state;
    setenv("PRIDE_IFNAME", "10.254.0.1", 1);
    /* both ranks fail in pride_init, so the harness counts two failures */
    assert_int_equal(harness_run(2, wrong_address, NULL, &verbs_opts), 2);
    unsetenv("PRIDE_IFNAME");
}

static int setup(void **state)
{
    (void)state;
    snprintf(fabric, sizeof fabric, "/tmp/pride-verbs-XXXXXX");
    if (!mkdtemp(fabric))
        return -1;
    setenv("PRIDE_VERBS_MODEL", fabric, 1);
    return 0;
}

/* Killed ranks leave their sockets behind. */
static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(fabric);
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", fabric, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(fabric);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_device),
        cmocka_unit_test(test_device_choice),
        cmocka_unit_test(test_wrong_address),
        cmocka_unit_test(test_all_pairs),
        cmocka_unit_test(test_out_of_order_tags),
        cmocka_unit_test(test_credit_storm),
        cmocka_unit_test(test_rendezvous_both_ways),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_garbage_message),
        cmocka_unit_test(test_abort_and_timeout),
        cmocka_unit_test(test_peer_killed),
        cmocka_unit_test(test_qp_error_mid_transfer),
        cmocka_unit_test(test_rkey_violation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

#else

static void test_not_built(void **state)
{
    (void)state;
    skip(); /* libibverbs / librdmacm were not found: the verbs backend is not built */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_not_built)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
