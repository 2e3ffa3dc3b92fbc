/*
 * ofi transport between real processes, once over libfabric's tcp;ofi_rxm provider
 * and once over shm: the checks of the tcp transport's test (every pair, 0 B to
 * 64 MiB, tags out of order, a peer killed, a garbage frame, abort, deadline) and the
 * ones particular to libfabric: a longer or shorter message than the receive expects,
 * eager and large (a large payload is never received), other arguments, a message
 * longer than any receive, memory registration, receives to itself, several threads
 * waiting at once, and a failure that must give every posted buffer back.
 *
 * The provider is chosen the way users choose it, with PRIDE_OFI_PROVIDER set in the
 * parent before the ranks are forked; FI_PROVIDER is left alone. A provider that
 * fi_getinfo does not offer on this machine is skipped with the reason printed.
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

#include <rdma/fi_errno.h>

#include "coll.h"
#include "harness.h"
#include "ofi.h"

static const char *prov;  /* provider of the running group */
static int prov_missing;  /* fi_getinfo does not offer it here */

static const struct harness_opts ofi_opts = {.transport = "ofi"};

/* HCHECK that also prints the context's last error when it fails. */
#define ECHECK(ctx, cond)                                                                 \
    do {                                                                                  \
        if (!(cond))                                                                      \
            fprintf(stderr, "last error: %s\n", pride_last_error(ctx));                  \
        HCHECK(cond);                                                                     \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void fill(uint8_t *b, size_t n, int from, int to, size_t len)
{
    uint64_t s = ((uint64_t)from << 40) ^ ((uint64_t)to << 20) ^ len;
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0)
            s = harness_rand(&s);
        b[i] = (uint8_t)(s >> (8 * (i % 8)));
    }
}

/* ---- every pair, every size ---- */

struct pairs_arg {
    const size_t *lens; /* one round per length, on the same context */
    size_t nlens;
    int mr_local;       /* force the registration path the provider does not need */
};

/* Every rank sends a distinct message of len bytes to every other rank at once. */
static int pairs_round(pride_context_t *ctx, int rank, int n, size_t len,
                       const struct pairs_arg *a)
{
    struct pride_tp *tp = ctx->tp;
    HCHECK_OK(ctx, pride_reset_stats(ctx));
    if (a->mr_local)
        tp->mr_local = 1;
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, len, -1));
    uint8_t **sb = calloc((size_t)n, sizeof *sb), **rb = calloc((size_t)n, sizeof *rb);
    void **kept = calloc((size_t)n, sizeof *kept);
    struct pride_xfer *x = calloc(2 * (size_t)n, sizeof *x);
    struct pride_xfer **xs = calloc(2 * (size_t)n, sizeof *xs);
    HCHECK(sb && rb && kept && x && xs);
    for (int p = 0; p < n; p++) {
        if (p == rank)
            continue;
        sb[p] = malloc(len ? len : 1);
        rb[p] = malloc(len ? len : 1);
        HCHECK(sb[p] && rb[p]);
        fill(sb[p], len, rank, p, len);
        if (a->mr_local && p % 2) /* half the buffers registered up front */
            HCHECK_OK(ctx, ctx->tp_ops->mem_reg(tp, rb[p], len, &kept[p]));
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
        ctx->tp_ops->mem_dereg(tp, kept[p]);
        free(sb[p]);
        free(rb[p]);
    }
    if (a->mr_local)
        HCHECK(tp->mrs == NULL); /* every registration given back */
    pride_stats_t st = PRIDE_STATS_INIT;
    HCHECK_OK(ctx, pride_get_stats(ctx, &st));
    unsigned long long total = (unsigned long long)len * (unsigned long long)(n - 1);
    HCHECK(st.bytes_sent == total && st.bytes_received == total);
    HCHECK(st.messages_sent == (unsigned long long)(n - 1));
    HCHECK(st.header_bytes_sent == sizeof(struct pride_frame_hdr) * (unsigned long long)(n - 1));
    free(want);
    free(sb);
    free(rb);
    free(kept);
    free(x);
    free(xs);
    return 0;
}

/* The rounds of every length in turn: one provider start-up per rank count (under the
   sanitizers that start-up is most of a round's cost). */
static int all_pairs(pride_context_t *ctx, int rank, int n, void *arg)
{
    const struct pairs_arg *a = arg;
    for (size_t i = 0; i < a->nlens; i++)
        if (pairs_round(ctx, rank, n, a->lens[i], a))
            return 1;
    return 0;
}

static void test_all_pairs(void **state)
{
    (void)state;
    if (prov_missing)
        skip();
    static const size_t small[] = {0, 1, 4096, 1 << 20}, large[] = {64u << 20};
    struct pairs_arg a = {small, sizeof small / sizeof small[0], 0};
    for (int n = 2; n <= 8; n++)
        assert_int_equal(harness_run(n, all_pairs, &a, &ofi_opts), 0);
    struct pairs_arg big = {large, 1, 0};
    for (int n = 2; n <= 4; n++)
        assert_int_equal(harness_run(n, all_pairs, &big, &ofi_opts), 0);
}

/* The registration path, as a provider with FI_MR_LOCAL would take it. */
static void test_registration(void **state)
{
    (void)state;
    if (prov_missing)
        skip();
    static const size_t lens[] = {1, 100000, 8u << 20};
    struct pairs_arg a = {lens, sizeof lens / sizeof lens[0], 1};
    assert_int_equal(harness_run(3, all_pairs, &a, &ofi_opts), 0);
}

/* ---- matching ---- */

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
            if (i == K / 2) /* let the rest arrive unexpected */
                sleep_ms(50);
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
    if (prov_missing)
        skip();
    assert_int_equal(harness_run(2, out_of_order, NULL, &ofi_opts), 0);
}

/* Each rank sends to itself, small and large, and to the other rank with the same
   (seq, tag): the receives must take the right sources. */
static int to_self(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    static const size_t lens[] = {8, 1u << 20};
    for (size_t i = 0; i < 2; i++) {
        size_t len = lens[i];
        uint8_t *s = malloc(len), *r_self = malloc(len), *r_peer = malloc(len), *w = malloc(len);
        HCHECK(s && r_self && r_peer && w);
        fill(s, len, rank, rank, len);
        struct coll c;
        HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, len, -1));
        struct pride_xfer x[4];
        HCHECK_OK(ctx, coll_irecv(&c, &x[0], rank, 3, r_self, len));
        HCHECK_OK(ctx, coll_irecv(&c, &x[1], 1 - rank, 3, r_peer, len));
        HCHECK_OK(ctx, coll_isend(&c, &x[2], rank, 3, s, len));
        HCHECK_OK(ctx, coll_isend(&c, &x[3], 1 - rank, 3, s, len));
        struct pride_xfer *xs[4] = {&x[0], &x[1], &x[2], &x[3]};
        HCHECK_OK(ctx, coll_end(&c, coll_wait(&c, xs, 4)));
        HCHECK(memcmp(r_self, s, len) == 0);
        fill(w, len, 1 - rank, 1 - rank, len);
        HCHECK(memcmp(r_peer, w, len) == 0);
        free(s);
        free(r_self);
        free(r_peer);
        free(w);
    }
    return 0;
}

static void test_to_self(void **state)
{
    (void)state;
    if (prov_missing)
        skip();
    assert_int_equal(harness_run(2, to_self, NULL, &ofi_opts), 0);
}

/* ---- mismatches ---- */

struct mm_arg {
    size_t send_len, recv_len;
    int dtype0, dtype1; /* dtype in rank 0's and rank 1's meta */
    const char *want;   /* in rank 0's last error */
};

/* Rank 1 sends one message; rank 0 expects a different one and must say so. Rank 1
   hears of it through the error frame while it waits for an answer. */
static int mismatch(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    const struct mm_arg *a = arg;
    size_t blen = (a->send_len > a->recv_len ? a->send_len : a->recv_len) + 4096;
    char *buf = malloc(blen);
    HCHECK(buf);
    memset(buf, 1, blen);
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_ALLGATHER, rank ? a->dtype1 : a->dtype0, 0, 10,
                              -1));
    struct pride_xfer x[2];
    int st;
    if (rank == 1) {
        HCHECK_OK(ctx, coll_isend(&c, &x[0], 0, 0, buf, a->send_len));
        HCHECK_OK(ctx, coll_irecv(&c, &x[1], 0, 1, buf + blen - 8, 8)); /* never sent */
        struct pride_xfer *xs[2] = {&x[0], &x[1]};
        st = coll_end(&c, coll_wait(&c, xs, 2));
        ECHECK(ctx, st == PRIDE_ERR_MISMATCH);
        HCHECK(strstr(pride_last_error(ctx), "rank 0 gave up") != NULL);
        free(buf);
        return 0;
    }
    HCHECK_OK(ctx, coll_irecv(&c, &x[0], 1, 0, buf, a->recv_len));
    struct pride_xfer *xs[1] = {&x[0]};
    st = coll_end(&c, coll_wait(&c, xs, 1));
    ECHECK(ctx, st == PRIDE_ERR_MISMATCH);
    if (!strstr(pride_last_error(ctx), a->want)) {
        fprintf(stderr, "last error: %s\n", pride_last_error(ctx));
        return 1;
    }
    free(buf);
    return 0;
}

static void test_mismatch(void **state)
{
    (void)state;
    if (prov_missing)
        skip();
    struct harness_opts o = ofi_opts;
    o.timeout_ms = 10000;
    struct mm_arg longer = {100, 40, PRIDE_FLOAT32, PRIDE_FLOAT32,
                            "rank 1 sent 100 bytes for message 0, this rank expected 40"};
    assert_int_equal(harness_run(2, mismatch, &longer, &o), 0);
    struct mm_arg shorter = {40, 100, PRIDE_FLOAT32, PRIDE_FLOAT32,
                             "rank 1 sent 40 bytes for message 0, this rank expected 100"};
    assert_int_equal(harness_run(2, mismatch, &shorter, &o), 0);
    struct mm_arg big = {4000, 40, PRIDE_FLOAT32, PRIDE_FLOAT32,
                         "rank 1 sent 4000 bytes for message 0, this rank expected 40"};
    assert_int_equal(harness_run(2, mismatch, &big, &o), 0);
    /* past the eager size: the payload is never received, let alone truncated */
    struct mm_arg sar = {100000, 0, PRIDE_FLOAT32, PRIDE_FLOAT32,
                         "rank 1 sent 100000 bytes for message 0, this rank expected 0"};
    assert_int_equal(harness_run(2, mismatch, &sar, &o), 0);
    struct mm_arg rndv = {4u << 20, 1000, PRIDE_FLOAT32, PRIDE_FLOAT32,
                          "rank 1 sent 4194304 bytes for message 0, this rank expected 1000"};
    assert_int_equal(harness_run(2, mismatch, &rndv, &o), 0);
    struct mm_arg both = {2u << 20, 3u << 20, PRIDE_FLOAT32, PRIDE_FLOAT32,
                          "rank 1 sent 2097152 bytes for message 0, this rank expected 3145728"};
    assert_int_equal(harness_run(2, mismatch, &both, &o), 0);
    struct mm_arg meta = {40, 40, PRIDE_FLOAT32, PRIDE_INT32,
                          "this rank called allgather(count=10, float32, sum) but the peer "
                          "called allgather(count=10, int32, sum)"};
    assert_int_equal(harness_run(2, mismatch, &meta, &o), 0);
}

/* Rank 1 sends junk of *arg bytes under the tag rank 0 receives on, straight through
   libfabric: a header's worth, and more than any frame's header receive holds. */
static int garbage_frame(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    size_t len = *(size_t *)arg;
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1));
    struct pride_tp *tp = ctx->tp;
    if (rank == 1) {
        char *junk = malloc(len);
        HCHECK(junk);
        memset(junk, 0x5a, len);
        uint64_t tag = (c.seq & ((UINT64_C(1) << OFI_TAG_SEQ_BITS) - 1)) << 32;
        int64_t deadline = pride_deadline_ns(5000);
        struct fi_context2 fctx;
        struct fi_cq_tagged_entry e;
        ssize_t ret;
        while ((ret = fi_tsend(tp->ep, junk, len, NULL, tp->peers[0].addr, tag, &fctx)) ==
                   -FI_EAGAIN &&
               pride_now_ns() < deadline) {
            fi_cq_read(tp->cq, &e, 1); /* lets tcp;ofi_rxm connect */
            sleep_ms(1);
        }
        HCHECK(ret == 0);
        for (int i = 0; i < 300; i++) { /* keep the connection serviced a while */
            fi_cq_read(tp->cq, &e, 1);
            sleep_ms(1);
        }
        free(junk);
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
    ECHECK(ctx, st == PRIDE_ERR_PEER);
    ECHECK(ctx, strstr(pride_last_error(ctx), "rank 1 sent a malformed frame") != NULL);
    return 0;
}

static void test_garbage_frame(void **state)
{
    (void)state;
    if (prov_missing)
        skip();
    size_t hdr = sizeof(struct pride_frame_hdr), longer = OFI_SMALL + 1000;
    assert_int_equal(harness_run(2, garbage_frame, &hdr, &ofi_opts), 0);
    /* shm (libfabric 1.17) spins inside fi_cq_read on a message longer than its
       receive once it is past shm's inject size, so only tcp;ofi_rxm gets this one;
       pride's own frames never are longer than their receive */
    if (strcmp(prov, "shm") != 0)
        assert_int_equal(harness_run(2, garbage_frame, &longer, &ofi_opts), 0);
}

/* ---- failures ---- */

/* The receiver of a large message dies; the sender must fail, not hang. */
static int receiver_dies(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    size_t len = 256u << 20;
    if (rank == 1) {
        sleep_ms(200);
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
    ECHECK(ctx, st == PRIDE_ERR_PEER || st == PRIDE_ERR_TIMEOUT);
    HCHECK(strstr(pride_last_error(ctx), "rank 1") != NULL);
    HCHECK(x.complete); /* the buffer is ours again */
    HCHECK(coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1) == st);
    free(buf);
    return 0;
}

/* The sender dies right after posting a large message; the receiver must fail, not
   hang. */
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
        HCHECK_OK(ctx, coll_isend(&c, &x, 0, 0, buf, len));
        raise(SIGKILL);
    }
    int st = coll_irecv(&c, &x, 1, 0, buf, len);
    if (st == PRIDE_OK) {
        struct pride_xfer *xs[1] = {&x};
        st = coll_wait(&c, xs, 1);
    }
    st = coll_end(&c, st);
    ECHECK(ctx, st == PRIDE_ERR_PEER || st == PRIDE_ERR_TIMEOUT);
    HCHECK(strstr(pride_last_error(ctx), "rank 1") != NULL);
    HCHECK(x.complete);
    free(buf);
    return 0;
}

static void test_peer_killed(void **state)
{
    (void)state;
    if (prov_missing)
        skip();
    struct harness_opts o = ofi_opts;
    o.timeout_ms = 10000;
    /* rank 1 is killed on purpose: the harness counts it as one failure */
    assert_int_equal(harness_run(2, receiver_dies, NULL, &o), 1);
    assert_int_equal(harness_run(2, sender_dies, NULL, &o), 1);
}

/* Rank 0 fails with receives of every size posted (a large one perhaps in the middle
   of arriving, perhaps done); when coll_end returns, every one of them is complete,
   and rank 1 and rank 2 learn why. */
static int fail_with_posted(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    size_t big = 64u << 20;
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_BROADCAST, PRIDE_UINT8, 0, big, 0));
    char *buf = malloc(big);
    HCHECK(buf);
    memset(buf, 3, big);
    struct pride_xfer x[4];
    int st;
    if (rank == 0) {
        HCHECK_OK(ctx, coll_irecv(&c, &x[0], 1, 0, buf, big));
        HCHECK_OK(ctx, coll_irecv(&c, &x[1], 2, 0, buf, 16));
        HCHECK_OK(ctx, coll_irecv(&c, &x[2], 2, 1, buf + 16, 0));
        HCHECK_OK(ctx, coll_irecv(&c, &x[3], 1, 1, buf + 64, 4096));
        struct pride_xfer *xs[1] = {&x[1]}; /* let the large one start arriving */
        HCHECK(ctx->tp_ops->wait(ctx->tp, xs, 1, pride_now_ns() + 100 * 1000000) ==
               PRIDE_ERR_TIMEOUT);
        pride_error(ctx, PRIDE_ERR_PEER, "rank 0 gives up on purpose");
        st = coll_end(&c, PRIDE_ERR_PEER);
        ECHECK(ctx, st == PRIDE_ERR_PEER);
        for (int i = 0; i < 4; i++)
            HCHECK(x[i].complete && (i == 0 || x[i].status != PRIDE_OK));
        free(buf);
        return 0;
    }
    struct pride_xfer *xs[2] = {&x[0], &x[1]};
    if (rank == 1) {
        HCHECK_OK(ctx, coll_isend(&c, &x[0], 0, 0, buf, big));
        HCHECK_OK(ctx, coll_irecv(&c, &x[1], 0, 9, buf, 8)); /* never sent */
    } else {
        HCHECK_OK(ctx, coll_irecv(&c, &x[0], 0, 9, buf, 8)); /* never sent */
        xs[1] = NULL;
    }
    st = coll_end(&c, coll_wait(&c, xs, 2));
    ECHECK(ctx, st == PRIDE_ERR_PEER);
    ECHECK(ctx, strstr(pride_last_error(ctx), "rank 0 gave up on broadcast") != NULL);
    HCHECK(strstr(pride_last_error(ctx), "on purpose") != NULL);
    free(buf);
    return 0;
}

static void test_fail_gives_buffers_back(void **state)
{
    (void)state;
    if (prov_missing)
        skip();
    struct harness_opts o = ofi_opts;
    o.timeout_ms = 5000;
    assert_int_equal(harness_run(3, fail_with_posted, NULL, &o), 0);
}

struct abort_arg {
    pride_context_t *ctx;
};

static void *abort_later(void *p)
{
    sleep_ms(100);
    pride_abort(((struct abort_arg *)p)->ctx);
    return NULL;
}

/* A receive nobody answers: pride_abort from another thread wakes it. */
static int abort_wakes(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    if (rank == 1) {
        sleep_ms(1000);
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
    ECHECK(ctx, st == PRIDE_ERR_ABORTED);
    HCHECK(x.complete);
    return 0;
}

/* A receive nobody answers ends with TIMEOUT at its deadline, naming the peer. */
static int times_out(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    if (rank == 1) {
        sleep_ms(1500);
        return 0;
    }
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1));
    char buf[8];
    struct pride_xfer x;
    HCHECK_OK(ctx, coll_irecv(&c, &x, 1, 0, buf, sizeof buf));
    struct pride_xfer *xs[1] = {&x};
    int64_t t0 = pride_now_ns();
    int st = coll_wait(&c, xs, 1);
    ECHECK(ctx, st == PRIDE_ERR_TIMEOUT);
    HCHECK(pride_now_ns() >= c.deadline_ns && pride_now_ns() - t0 < INT64_C(5000000000));
    HCHECK(strstr(pride_last_error(ctx), "waiting for rank 1") != NULL);
    HCHECK(coll_end(&c, st) == PRIDE_ERR_TIMEOUT);
    return 0;
}

static void test_abort_and_timeout(void **state)
{
    (void)state;
    if (prov_missing)
        skip();
    assert_int_equal(harness_run(2, abort_wakes, NULL, &ofi_opts), 0);
    struct harness_opts o = ofi_opts;
    o.timeout_ms = 500;
    assert_int_equal(harness_run(2, times_out, NULL, &o), 0);
}

/* ---- threads ---- */

struct waiter {
    pride_context_t *ctx;
    struct coll *c;
    uint32_t tag;
    char buf[64];
    int st;
};

static void *wait_one(void *p)
{
    struct waiter *w = p;
    struct pride_xfer x;
    w->st = coll_irecv(w->c, &x, 1, w->tag, w->buf, sizeof w->buf);
    if (w->st == PRIDE_OK) {
        struct pride_xfer *xs[1] = {&x};
        w->st = coll_wait(w->c, xs, 1);
    }
    return NULL;
}

/* Four threads of rank 0 wait at once, each for its own message; rank 1 answers them
   in reverse order, one at a time. */
static int threads_wait(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    enum { T = 4 };
    struct coll c;
    HCHECK_OK(ctx, coll_begin(&c, ctx, PRIDE_COLL_P2P, 0, 0, 0, -1));
    if (rank == 1) {
        for (int t = T - 1; t >= 0; t--) {
            char buf[64];
            memset(buf, 'a' + t, sizeof buf);
            sleep_ms(30);
            struct pride_xfer x;
            HCHECK_OK(ctx, coll_isend(&c, &x, 0, (uint32_t)t, buf, sizeof buf));
            struct pride_xfer *xs[1] = {&x};
            HCHECK_OK(ctx, coll_wait(&c, xs, 1));
        }
        return coll_end(&c, PRIDE_OK);
    }
    struct waiter w[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        w[t] = (struct waiter){.ctx = ctx, .c = &c, .tag = (uint32_t)t};
        HCHECK(pthread_create(&th[t], NULL, wait_one, &w[t]) == 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        HCHECK_OK(ctx, w[t].st);
        for (size_t i = 0; i < sizeof w[t].buf; i++)
            HCHECK(w[t].buf[i] == 'a' + t);
    }
    return coll_end(&c, PRIDE_OK);
}

static void test_threads(void **state)
{
    (void)state;
    if (prov_missing)
        skip();
    assert_int_equal(harness_run(2, threads_wait, NULL, &ofi_opts), 0);
}

/* ---- configuration ---- */

static void test_bad_provider(void **state)
{
    (void)state;
    if (prov_missing)
        skip();
    setenv("PRIDE_OFI_PROVIDER", "carrier-pigeon", 1);
    pride_config_t c = PRIDE_CONFIG_INIT;
    c.rank = 0;
    c.nranks = 1;
    c.transport = "ofi";
    pride_context_t *ctx = NULL;
    assert_int_equal(pride_init(&c, &ctx), PRIDE_ERR_TRANSPORT);
    assert_null(ctx);
    setenv("PRIDE_OFI_PROVIDER", prov, 1);
    assert_int_equal(pride_init(&c, &ctx), PRIDE_OK); /* a job of one */
    assert_int_equal(pride_nranks(ctx), 1);
    assert_int_equal(pride_finalize(ctx), PRIDE_OK);
    /* an interface picks the domain of providers with socket addresses (shm has none) */
    c.ifname = "lo";
    assert_int_equal(pride_init(&c, &ctx), PRIDE_OK);
    assert_int_equal(pride_finalize(ctx), PRIDE_OK);
    c.ifname = "no-such-if0";
    ctx = NULL;
    int st = pride_init(&c, &ctx);
    if (strcmp(prov, "shm") == 0) {
        assert_int_equal(st, PRIDE_OK);
        assert_int_equal(pride_finalize(ctx), PRIDE_OK);
    } else {
        assert_int_equal(st, PRIDE_ERR_TRANSPORT);
    }
}

/* ---- groups: one per provider ---- */

static int use_provider(const char *name)
{
    prov = name;
    struct fi_info *hints = fi_allocinfo(), *info = NULL;
    if (!hints)
        return -1;
    hints->ep_attr->type = FI_EP_RDM;
    hints->caps = FI_TAGGED | FI_DIRECTED_RECV;
    hints->fabric_attr->prov_name = strdup(name);
    int ret = fi_getinfo(FI_VERSION(1, 10), NULL, NULL, 0, hints, &info);
    prov_missing = ret != 0 || !info;
    if (prov_missing)
        printf("skipping provider %s: fi_getinfo offers no such provider with RDM endpoints "
               "and tagged messages here (%s)\n", name, fi_strerror(-ret));
    fi_freeinfo(info);
    fi_freeinfo(hints);
    setenv("PRIDE_OFI_PROVIDER", name, 1);
    return 0;
}

static int group_tcp(void **state)
{
    (void)state;
    return use_provider("tcp;ofi_rxm");
}

static int group_shm(void **state)
{
    (void)state;
    return use_provider("shm");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_provider),
        cmocka_unit_test(test_all_pairs),
        cmocka_unit_test(test_registration),
        cmocka_unit_test(test_out_of_order_tags),
        cmocka_unit_test(test_to_self),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_garbage_frame),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_abort_and_timeout),
        cmocka_unit_test(test_fail_gives_buffers_back),
        cmocka_unit_test(test_peer_killed),
    };
    int failed = cmocka_run_group_tests_name("ofi over tcp;ofi_rxm", tests, group_tcp, NULL);
    failed += cmocka_run_group_tests_name("ofi over shm", tests, group_shm, NULL);
    return failed;
}
