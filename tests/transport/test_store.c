/*
 * Rendezvous stores, every backend through the same tests: values come back byte for
 * byte, a missing key times out, add is atomic across processes, a barrier holds
 * everyone until the last rank arrives, bad specs and oversized input are refused.
 * The tcp server also has to survive clients that send garbage. Multi-rank tests fork
 * real processes, each opening its own store; the redis tests start a private
 * redis-server and are skipped (with the reason) when there is none.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "store.h"

#define T_TIMEOUT_MS 20000
#define T_MIB (1u << 20)

/* Present only when the library was built with hiredis. */
extern const struct pride_store_ops pride_store_redis_ops __attribute__((weak));

struct backend {
    const char *scheme;
    char spec[320];
    char dir[64];             /* file: the store's directory */
    const char *unavailable;  /* why this backend's tests are skipped, or NULL */
};

static struct backend file_b = {.scheme = "file"};
static struct backend tcp_b = {.scheme = "tcp"};
static struct backend redis_b = {.scheme = "redis"};
static pid_t redis_pid;
static char job[64];
static int job_counter;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t deadline_in(int ms)
{
    return now_ns() + (int64_t)ms * 1000000LL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A loopback port nobody listens on right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        fprintf(stderr, "free_port: %s\n", strerror(errno));
        abort();
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Each test gets a fresh job (and a fresh directory or port). */
static int backend_setup(void **state)
{
    struct backend *b = *state;
    snprintf(job, sizeof job, "job-%ld-%d", (long)getpid(), job_counter++);
    if (!strcmp(b->scheme, "file")) {
        snprintf(b->dir, sizeof b->dir, "/tmp/pride-store-XXXXXX");
        if (!mkdtemp(b->dir))
            return -1;
        snprintf(b->spec, sizeof b->spec, "file:%s", b->dir);
    } else if (!strcmp(b->scheme, "tcp")) {
        snprintf(b->spec, sizeof b->spec, "tcp:127.0.0.1:%d", free_port());
    }
    return 0;
}

static int backend_teardown(void **state)
{
    struct backend *b = *state;
    if (!strcmp(b->scheme, "file"))
        harness_rm_tree(b->dir);
    return 0;
}

static struct pride_store *open_store(const struct backend *b, int rank, int nranks)
{
    char why[256] = "";
    struct pride_store *s = NULL;
    int st = pride_store_open(b->spec, job, rank, nranks, T_TIMEOUT_MS, &s, why, sizeof why);
    if (st != PRIDE_OK) {
        fprintf(stderr, "rank %d: open %s: status %d: %s\n", rank, b->spec, st, why);
        return NULL;
    }
    return s;
}

/* Fork nranks processes running fn(rank), released together so that they really
   overlap; 0 when every one exited 0. A stuck child is ended by its alarm (a hang
   guard, not a timing check). */
typedef int (*rank_fn)(const struct backend *b, int rank, int nranks, void *arg);

static int run_ranks(const struct backend *b, int nranks, rank_fn fn, void *arg)
{
    pid_t pids[16];
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < nranks; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            alarm(120);
            char c;
            close(gate[1]);
            HCHECK(read(gate[0], &c, 1) == 0); /* EOF: everyone is forked */
            int rc = fn(b, r, nranks, arg);
            fflush(stderr);
            _exit(rc);
        }
    }
    close(gate[0]);
    close(gate[1]);
    int failures = 0;
    for (int r = 0; r < nranks; r++) {
        int status;
        if (waitpid(pids[r], &status, 0) != pids[r] || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "rank %d failed (status %#x)\n", r, status);
            failures++;
        }
    }
    return failures;
}

static void skip_unavailable(const struct backend *b)
{
    if (b->unavailable) {
        print_message("skipping %s: store tests: %s\n", b->scheme, b->unavailable);
        skip();
    }
}

static void check_get(struct pride_store *s, const char *key, const void *want, size_t wlen)
{
    void *v = NULL;
    size_t vl = 0;
    int st = pride_store_get(s, key, &v, &vl, deadline_in(T_TIMEOUT_MS));
    if (st != PRIDE_OK)
        print_error("get \"%s\": %s\n", key, s->why);
    assert_int_equal(st, PRIDE_OK);
    assert_int_equal(vl, wlen);
    assert_non_null(v);
    if (wlen)
        assert_memory_equal(v, want, wlen);
    free(v);
}

/* ---- single process ---- */

static void test_roundtrip(void **state)
{
    struct backend *b = *state;
    skip_unavailable(b);
    struct pride_store *s = open_store(b, 0, 1);
    assert_non_null(s);

    assert_int_equal(pride_store_set(s, "addr", "hello", 5), PRIDE_OK);
    check_get(s, "addr", "hello", 5);
    assert_int_equal(pride_store_set(s, "addr", "world!", 6), PRIDE_OK);
    check_get(s, "addr", "world!", 6);

    unsigned char bin[512];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i * 7 + (i >> 8));
    assert_int_equal(pride_store_set(s, "binary", bin, sizeof bin), PRIDE_OK);
    check_get(s, "binary", bin, sizeof bin);
    assert_int_equal(pride_store_set(s, "empty", NULL, 0), PRIDE_OK);
    check_get(s, "empty", NULL, 0);

    unsigned char *big = malloc(T_MIB);
    assert_non_null(big);
    uint64_t rs = 42;
    for (size_t i = 0; i < T_MIB; i += 8) {
        uint64_t r = harness_rand(&rs);
        memcpy(big + i, &r, 8);
    }
    assert_int_equal(pride_store_set(s, "big", big, T_MIB), PRIDE_OK);
    check_get(s, "big", big, T_MIB);
    free(big);

    /* Keys that an escaping or hashing scheme could confuse stay apart. */
    const char *keys[] = {"a/b", "a%2fb", "a%2Fb", "a.b", "a_b", ".", "..", "x y\"\\'*?~#"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_int_equal(pride_store_set(s, keys[i], &i, sizeof i), PRIDE_OK);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        check_get(s, keys[i], &i, sizeof i);
    char k1[201], k2[201];
    memset(k1, '.', 200);
    k1[200] = '\0';
    memcpy(k2, k1, sizeof k1);
    k2[199] = '/';
    assert_int_equal(pride_store_set(s, k1, "one", 3), PRIDE_OK);
    assert_int_equal(pride_store_set(s, k2, "two", 3), PRIDE_OK);
    check_get(s, k1, "one", 3);
    check_get(s, k2, "two", 3);
    pride_store_close(s);
}

static void test_missing_times_out(void **state)
{
    struct backend *b = *state;
    skip_unavailable(b);
    struct pride_store *s = open_store(b, 0, 1);
    assert_non_null(s);
    void *v = (void *)&v;
    size_t vl = 12345;
    assert_int_equal(pride_store_get(s, "nobody-sets-this", &v, &vl, deadline_in(200)),
                     PRIDE_ERR_TIMEOUT);
    assert_true(v == (void *)&v && vl == 12345); /* outputs untouched on failure */
    assert_true(strlen(s->why) > 0);
    /* A deadline already past is one look, which fails just the same. */
    assert_int_equal(pride_store_get(s, "nobody-sets-this", &v, &vl, 0), PRIDE_ERR_TIMEOUT);
    /* and the store is still good afterwards */
    assert_int_equal(pride_store_set(s, "later", "x", 1), PRIDE_OK);
    check_get(s, "later", "x", 1);
    v = NULL;
    assert_int_equal(pride_store_get(s, "later", &v, &vl, 0), PRIDE_OK);
    assert_true(vl == 1 && !memcmp(v, "x", 1));
    free(v);
    pride_store_close(s);
}

static void test_add_semantics(void **state)
{
    struct backend *b = *state;
    skip_unavailable(b);
    struct pride_store *s = open_store(b, 0, 1);
    assert_non_null(s);
    int64_t r = 0;
    assert_int_equal(pride_store_add(s, "ctr", 5, &r), PRIDE_OK);
    assert_int_equal(r, 5);
    assert_int_equal(pride_store_add(s, "ctr", -7, &r), PRIDE_OK);
    assert_int_equal(r, -2);
    check_get(s, "ctr", "-2", 2); /* counters read as decimal text */
    assert_int_equal(pride_store_set(s, "text", "not a number", 12), PRIDE_OK);
    assert_int_equal(pride_store_add(s, "text", 1, &r), PRIDE_ERR_INVALID);
    assert_int_equal(r, -2);
    assert_int_equal(pride_store_add(s, "big", INT64_MAX, &r), PRIDE_OK);
    assert_int_equal(pride_store_add(s, "big", 1, &r), PRIDE_ERR_INVALID);
    assert_true(r == INT64_MAX);
    assert_int_equal(pride_store_barrier(s, "solo", 1, deadline_in(T_TIMEOUT_MS)), PRIDE_OK);
    pride_store_close(s);
}

static void test_bad_input(void **state)
{
    struct backend *b = *state;
    skip_unavailable(b);
    struct pride_store *s = open_store(b, 0, 1);
    assert_non_null(s);
    char *big = calloc(T_MIB + 1, 1);
    assert_non_null(big);
    s->why[0] = '\0';
    assert_int_equal(pride_store_set(s, "k", big, T_MIB + 1), PRIDE_ERR_INVALID);
    assert_true(strlen(s->why) > 0);
    free(big);
    char longkey[202];
    memset(longkey, 'k', 201);
    longkey[201] = '\0';
    void *v;
    size_t vl;
    int64_t r;
    assert_int_equal(pride_store_set(s, longkey, "x", 1), PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_get(s, longkey, &v, &vl, 0), PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_add(s, longkey, 1, &r), PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_set(s, "", "x", 1), PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_set(s, NULL, "x", 1), PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_set(s, "new\nline", "x", 1), PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_set(s, "k\x80", "x", 1), PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_set(s, "k", NULL, 3), PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_get(s, "k", NULL, &vl, 0), PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_add(s, "k", 1, NULL), PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_barrier(s, "k", 0, 0), PRIDE_ERR_INVALID);
    /* the longest legal key still works */
    longkey[200] = '\0';
    assert_int_equal(pride_store_set(s, longkey, "x", 1), PRIDE_OK);
    check_get(s, longkey, "x", 1);
    pride_store_close(s);
}

/* ---- many processes ---- */

static int add_rank(const struct backend *b, int rank, int nranks, void *arg)
{
    (void)arg;
    struct pride_store *s = open_store(b, rank, nranks);
    HCHECK(s);
    int64_t prev = 0;
    for (int i = 0; i < 100; i++) {
        int64_t r;
        int st = pride_store_add(s, "counter", 1, &r);
        if (st != PRIDE_OK)
            fprintf(stderr, "rank %d add: %s\n", rank, s->why);
        HCHECK(st == PRIDE_OK);
        HCHECK(r > prev && r <= 100 * nranks);
        prev = r;
    }
    HCHECK(pride_store_barrier(s, "added", nranks, deadline_in(T_TIMEOUT_MS)) == PRIDE_OK);
    void *v;
    size_t vl;
    HCHECK(pride_store_get(s, "counter", &v, &vl, deadline_in(T_TIMEOUT_MS)) == PRIDE_OK);
    char want[16];
    snprintf(want, sizeof want, "%d", 100 * nranks);
    HCHECK(vl == strlen(want) && !memcmp(v, want, vl));
    free(v);
    pride_store_close(s);
    return 0;
}

static void test_add_concurrent(void **state)
{
    struct backend *b = *state;
    skip_unavailable(b);
    assert_int_equal(run_ranks(b, 8, add_rank, NULL), 0);
}

static void writer_value(int rank, int k, unsigned char *buf, size_t *len)
{
    *len = (size_t)(rank * 20 + k) * 37 % 3000;
    uint64_t rs = (uint64_t)rank * 1000 + (uint64_t)k;
    for (size_t i = 0; i < *len; i++)
        buf[i] = (unsigned char)harness_rand(&rs);
}

static int writer_rank(const struct backend *b, int rank, int nranks, void *arg)
{
    (void)arg;
    struct pride_store *s = open_store(b, rank, nranks);
    HCHECK(s);
    unsigned char want[3000];
    size_t wl;
    char key[32];
    for (int k = 0; k < 20; k++) {
        writer_value(rank, k, want, &wl);
        snprintf(key, sizeof key, "r%d/k%d", rank, k);
        HCHECK(pride_store_set(s, key, want, wl) == PRIDE_OK);
    }
    /* Read everyone's keys, waiting for those not written yet. */
    for (int r = 0; r < nranks; r++) {
        for (int k = 19; k >= 0; k--) {
            snprintf(key, sizeof key, "r%d/k%d", r, k);
            void *v;
            size_t vl;
            HCHECK(pride_store_get(s, key, &v, &vl, deadline_in(T_TIMEOUT_MS)) == PRIDE_OK);
            writer_value(r, k, want, &wl);
            HCHECK(vl == wl && !memcmp(v, want, wl));
            free(v);
        }
    }
    HCHECK(pride_store_barrier(s, "read", nranks, deadline_in(T_TIMEOUT_MS)) == PRIDE_OK);
    pride_store_close(s);
    return 0;
}

static void test_concurrent_writers(void **state)
{
    struct backend *b = *state;
    skip_unavailable(b);
    assert_int_equal(run_ranks(b, 6, writer_rank, NULL), 0);
}

static int barrier_rank(const struct backend *b, int rank, int nranks, void *arg)
{
    (void)arg;
    struct pride_store *s = open_store(b, rank, nranks);
    HCHECK(s);
    char key[32];
    for (int round = 0; round < 3; round++) {
        /* Late arrivals: a barrier that let anyone through early shows up below. */
        sleep_ms(((rank + round) % nranks) * 30);
        snprintf(key, sizeof key, "arrived/%d/%d", round, rank);
        HCHECK(pride_store_set(s, key, "1", 1) == PRIDE_OK);
        snprintf(key, sizeof key, "barrier/%d", round);
        HCHECK(pride_store_barrier(s, key, nranks, deadline_in(T_TIMEOUT_MS)) == PRIDE_OK);
        for (int r = 0; r < nranks; r++) {
            snprintf(key, sizeof key, "arrived/%d/%d", round, r);
            void *v;
            size_t vl;
            int st = pride_store_get(s, key, &v, &vl, 0); /* one look: it must be there */
            if (st != PRIDE_OK)
                fprintf(stderr, "rank %d passed barrier %d before rank %d arrived\n", rank,
                        round, r);
            HCHECK(st == PRIDE_OK);
            free(v);
        }
    }
    pride_store_close(s);
    return 0;
}

static void test_barrier(void **state)
{
    struct backend *b = *state;
    skip_unavailable(b);
    assert_int_equal(run_ranks(b, 5, barrier_rank, NULL), 0);
}

static int timeout_barrier_rank(const struct backend *b, int rank, int nranks, void *arg)
{
    (void)arg;
    struct pride_store *s = open_store(b, rank, nranks);
    HCHECK(s);
    /* nranks + 1 never arrive */
    HCHECK(pride_store_barrier(s, "never", nranks + 1, deadline_in(300)) == PRIDE_ERR_TIMEOUT);
    HCHECK(pride_store_barrier(s, "done", nranks, deadline_in(T_TIMEOUT_MS)) == PRIDE_OK);
    pride_store_close(s);
    return 0;
}

static void test_barrier_timeout(void **state)
{
    struct backend *b = *state;
    skip_unavailable(b);
    assert_int_equal(run_ranks(b, 3, timeout_barrier_rank, NULL), 0);
}

/* ---- specs ---- */

static void expect_refused(const char *spec, int want)
{
    char why[256] = "";
    struct pride_store *s = (struct pride_store *)&why; /* must stay untouched */
    int st = pride_store_open(spec, "job", 0, 1, 500, &s, why, sizeof why);
    if (st != want)
        print_error("spec \"%s\": status %d, expected %d (%s)\n", spec ? spec : "(null)", st,
                    want, why);
    assert_int_equal(st, want);
    assert_true(s == (struct pride_store *)&why);
    assert_true(strlen(why) > 0);
}

static void test_invalid_specs(void **state)
{
    (void)state;
    const char *bad[] = {NULL, "", "nocolon", "file:", "tcp:", "tcp:host", "tcp:host:notaport",
                         "tcp:host:0", "tcp:host:65536", "tcp:host:-1", "tcp:host:80x",
                         "tcp::5000", "tcp:::1:5000", "tcp:[::1", "tcp:[::1]5000",
                         "tcp:[]:5000", "bogus:x", ":x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_refused(bad[i], PRIDE_ERR_INVALID);
    /* redis: specs are checked only where redis: is built */
    const char *bad_redis[] = {"redis:", "redis:host", "redis:host:0", "redis:[::1]"};
    for (size_t i = 0; i < sizeof bad_redis / sizeof bad_redis[0]; i++)
        expect_refused(bad_redis[i], &pride_store_redis_ops ? PRIDE_ERR_INVALID
                                                            : PRIDE_ERR_UNSUPPORTED);

    char why[256] = "";
    struct pride_store *s = NULL;
    char longjob[200];
    memset(longjob, 'j', sizeof longjob - 1);
    longjob[sizeof longjob - 1] = '\0';
    assert_int_equal(pride_store_open("file:/tmp", NULL, 0, 1, 500, &s, why, sizeof why),
                     PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_open("file:/tmp", "", 0, 1, 500, &s, why, sizeof why),
                     PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_open("file:/tmp", longjob, 0, 1, 500, &s, why, sizeof why),
                     PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_open("file:/tmp", "a\tb", 0, 1, 500, &s, why, sizeof why),
                     PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_open("file:/tmp", "j", -1, 1, 500, &s, why, sizeof why),
                     PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_open("file:/tmp", "j", 2, 2, 500, &s, why, sizeof why),
                     PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_open("file:/tmp", "j", 0, 1, 0, &s, why, sizeof why),
                     PRIDE_ERR_INVALID);
    assert_int_equal(pride_store_open("file:/tmp", "j", 0, 1, 500, NULL, why, sizeof why),
                     PRIDE_ERR_INVALID);
    assert_null(s);
    /* no why buffer at all is fine too */
    assert_int_equal(pride_store_open("bogus:x", "j", 0, 1, 500, &s, NULL, 0), PRIDE_ERR_INVALID);
    /* a file store that is a file, not a directory */
    expect_refused("file:/etc/passwd", PRIDE_ERR_IO);
    if (&pride_store_redis_ops == NULL)
        expect_refused("redis:127.0.0.1:6379", PRIDE_ERR_UNSUPPORTED);
}

/* ---- tcp only ---- */

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
    assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

/* A request header: magic "PRST", version, op, key length, value length. */
static void raw_header(unsigned char h[16], uint32_t magic, int op, uint32_t klen, uint32_t vlen)
{
    put_be(h, magic, 4);
    put_be(h + 4, 1, 2);
    put_be(h + 6, (uint64_t)op, 2);
    put_be(h + 8, klen, 4);
    put_be(h + 12, vlen, 4);
}

/* The server must hang up on fd (EOF or reset) within a generous guard. */
static void expect_hangup(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    unsigned char buf[256];
    for (;;) {
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            break; /* 0: EOF, <0: reset */
    }
    close(fd);
}

static void expect_service(struct pride_store *a, struct pride_store *b, int round)
{
    char key[32], val[32];
    snprintf(key, sizeof key, "ok/%d", round);
    snprintf(val, sizeof val, "value %d", round);
    assert_int_equal(pride_store_set(a, key, val, strlen(val)), PRIDE_OK);
    check_get(b, key, val, strlen(val));
}

static void test_tcp_garbage(void **state)
{
    struct backend *b = *state;
    int port = atoi(strrchr(b->spec, ':') + 1);
    struct pride_store *s0 = open_store(b, 0, 2), *s1 = open_store(b, 1, 2);
    assert_non_null(s0);
    assert_non_null(s1);
    int round = 0;
    expect_service(s0, s1, round++);

    /* A client that sends half a request and then nothing stays connected throughout,
       and must not hold up anyone else. */
    int slow = raw_connect(port);
    unsigned char h[16];
    raw_header(h, 0x50525354, 1, 3, 10);
    raw_send(slow, h, sizeof h);
    raw_send(slow, "abcde", 5);
    expect_service(s1, s0, round++);

    /* many clients connected at once, saying nothing */
    int idle[100];
    for (size_t i = 0; i < sizeof idle / sizeof idle[0]; i++)
        idle[i] = raw_connect(port);
    expect_service(s0, s1, round++);
    for (size_t i = 0; i < sizeof idle / sizeof idle[0]; i++)
        close(idle[i]);

    /* random bytes */
    int fd = raw_connect(port);
    unsigned char junk[4096];
    uint64_t rs = 7;
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)harness_rand(&rs);
    raw_send(fd, junk, sizeof junk);
    expect_hangup(fd);
    expect_service(s0, s1, round++);

    /* valid magic, then lengths far over the limits */
    fd = raw_connect(port);
    raw_header(h, 0x50525354, 1, 5, 0xFFFFFFFFu);
    raw_send(fd, h, sizeof h);
    expect_hangup(fd);
    fd = raw_connect(port);
    raw_header(h, 0x50525354, 1, 0x7FFFFFFFu, 1);
    raw_send(fd, h, sizeof h);
    expect_hangup(fd);
    expect_service(s1, s0, round++);

    /* wrong magic, unknown op, an empty key, a GET carrying a value, a wrong version */
    uint32_t bad[][4] = {{0x12345678, 2, 3, 0}, {0x50525354, 99, 3, 0},
                         {0x50525354, 2, 0, 0}, {0x50525354, 2, 3, 5}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fd = raw_connect(port);
        raw_header(h, bad[i][0], (int)bad[i][1], bad[i][2], bad[i][3]);
        raw_send(fd, h, sizeof h);
        raw_send(fd, "keyvalue", 8);
        expect_hangup(fd);
    }
    fd = raw_connect(port);
    raw_header(h, 0x50525354, 2, 3, 0);
    h[5] = 9;
    raw_send(fd, h, sizeof h);
    expect_hangup(fd);
    expect_service(s0, s1, round++);

    /* a truncated request, then EOF */
    fd = raw_connect(port);
    raw_header(h, 0x50525354, 1, 3, 100);
    raw_send(fd, h, sizeof h);
    raw_send(fd, "abc0123", 7);
    close(fd);
    expect_service(s1, s0, round++);

    /* A well-formed raw WAIT is parked and answered when the key is set... */
    fd = raw_connect(port);
    char key[64];
    int kl = snprintf(key, sizeof key, "%s/raw", job);
    raw_header(h, 0x50525354, 3, (uint32_t)kl, 0);
    raw_send(fd, h, sizeof h);
    raw_send(fd, key, (size_t)kl);
    expect_service(s0, s1, round++);
    assert_int_equal(pride_store_set(s1, "raw", "RAW", 3), PRIDE_OK);
    unsigned char rep[15];
    size_t got = 0;
    while (got < sizeof rep) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t r = recv(fd, rep + got, sizeof rep - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(rep, "PRST\0\1\0\0\0\0\0\3RAW", 15);
    /* ...but a parked client that talks again is a protocol violation. */
    raw_header(h, 0x50525354, 3, 7, 0);
    raw_send(fd, h, sizeof h);
    raw_send(fd, "nothere", 7);
    sleep_ms(50);
    raw_send(fd, h, 4);
    expect_hangup(fd);

    expect_service(s1, s0, round++);
    close(slow);
    pride_store_close(s1);
    pride_store_close(s0);
}

static int late_client(const struct backend *b, int rank, int nranks, void *arg)
{
    (void)arg;
    /* rank 1 starts first and must wait for rank 0's server to appear */
    struct pride_store *s = open_store(b, rank, nranks);
    HCHECK(s);
    void *v;
    size_t vl;
    HCHECK(pride_store_get(s, "from0", &v, &vl, deadline_in(T_TIMEOUT_MS)) == PRIDE_OK);
    HCHECK(vl == 5 && !memcmp(v, "hello", 5));
    free(v);
    HCHECK(pride_store_set(s, "from1", "world", 5) == PRIDE_OK);
    pride_store_close(s);
    return 0;
}

static void test_tcp_late_server(void **state)
{
    struct backend *b = *state;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(120);
        _exit(late_client(b, 1, 2, NULL));
    }
    sleep_ms(300);
    struct pride_store *s = open_store(b, 0, 2);
    assert_non_null(s);
    assert_int_equal(pride_store_set(s, "from0", "hello", 5), PRIDE_OK);
    check_get(s, "from1", "world", 5);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pride_store_close(s);
}

static void test_tcp_addresses(void **state)
{
    struct backend *b = *state;
    const char *hosts[] = {"localhost", "[::1]", "127.0.0.1"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        int v6 = hosts[i][0] == '[';
        if (v6) {
            int fd = socket(AF_INET6, SOCK_STREAM, 0);
            struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
            int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
            if (fd >= 0)
                close(fd);
            if (!ok) {
                print_message("no IPv6 loopback here: [::1] not tried\n");
                continue;
            }
        }
        snprintf(b->spec, sizeof b->spec, "tcp:%s:%d", hosts[i], free_port());
        struct pride_store *s = open_store(b, 0, 1);
        assert_non_null(s);
        assert_int_equal(pride_store_set(s, "k", hosts[i], strlen(hosts[i])), PRIDE_OK);
        check_get(s, "k", hosts[i], strlen(hosts[i]));
        pride_store_close(s);
    }
    /* rank 0 cannot serve on a port someone else holds */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    snprintf(b->spec, sizeof b->spec, "tcp:127.0.0.1:%d", ntohs(a.sin_port));
    expect_refused(b->spec, PRIDE_ERR_IO);
    close(fd);
    /* and a client whose server never comes gives up at its deadline */
    snprintf(b->spec, sizeof b->spec, "tcp:127.0.0.1:%d", free_port());
    char why[256] = "";
    struct pride_store *s = NULL;
    assert_int_equal(pride_store_open(b->spec, "j", 1, 2, 300, &s, why, sizeof why),
                     PRIDE_ERR_TIMEOUT);
    assert_null(s);
    assert_true(strlen(why) > 0);
}

/* ---- redis: a private server for the group ---- */

static int redis_group_setup(void **state)
{
    (void)state;
    const char *path = getenv("PATH");
    char exe[4096] = "";
    for (const char *p = path; p && *p && !exe[0];) {
        size_t n = strcspn(p, ":");
        snprintf(exe, sizeof exe, "%.*s/redis-server", (int)n, p);
        if (access(exe, X_OK) != 0)
            exe[0] = '\0';
        p += n + (p[n] == ':');
    }
    if (!exe[0]) {
        redis_b.unavailable = "redis-server is not on PATH";
        return 0;
    }
    if (&pride_store_redis_ops == NULL) {
        redis_b.unavailable = "this build of pride has no redis: store (hiredis not found)";
        return 0;
    }
    int port = free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    fflush(stdout);
    fflush(stderr);
    redis_pid = fork();
    if (redis_pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(exe, exe, "--port", ports, "--save", "", "--appendonly", "no", "--bind",
              "127.0.0.1", (char *)NULL);
        _exit(127);
    }
    snprintf(redis_b.spec, sizeof redis_b.spec, "redis:127.0.0.1:%s", ports);
    /* Opening retries until the server listens. */
    snprintf(job, sizeof job, "probe");
    struct pride_store *s = open_store(&redis_b, 0, 1);
    if (!s) {
        redis_b.unavailable = "the private redis-server did not start";
        return 0;
    }
    pride_store_close(s);
    return 0;
}

static int redis_group_teardown(void **state)
{
    (void)state;
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    return 0;
}

#define BACKEND_TEST(fn, b) cmocka_unit_test_prestate_setup_teardown(fn, backend_setup, \
                                                                      backend_teardown, &(b))

int main(void)
{
    const struct CMUnitTest common[] = {
        cmocka_unit_test(test_invalid_specs),
    };
    const struct CMUnitTest file_tests[] = {
        BACKEND_TEST(test_roundtrip, file_b),      BACKEND_TEST(test_missing_times_out, file_b),
        BACKEND_TEST(test_add_semantics, file_b),  BACKEND_TEST(test_bad_input, file_b),
        BACKEND_TEST(test_add_concurrent, file_b), BACKEND_TEST(test_concurrent_writers, file_b),
        BACKEND_TEST(test_barrier, file_b),        BACKEND_TEST(test_barrier_timeout, file_b),
    };
    const struct CMUnitTest tcp_tests[] = {
        BACKEND_TEST(test_roundtrip, tcp_b),       BACKEND_TEST(test_missing_times_out, tcp_b),
        BACKEND_TEST(test_add_semantics, tcp_b),   BACKEND_TEST(test_bad_input, tcp_b),
        BACKEND_TEST(test_add_concurrent, tcp_b),  BACKEND_TEST(test_concurrent_writers, tcp_b),
        BACKEND_TEST(test_barrier, tcp_b),         BACKEND_TEST(test_barrier_timeout, tcp_b),
        BACKEND_TEST(test_tcp_garbage, tcp_b),     BACKEND_TEST(test_tcp_late_server, tcp_b),
        BACKEND_TEST(test_tcp_addresses, tcp_b),
    };
    const struct CMUnitTest redis_tests[] = {
        BACKEND_TEST(test_roundtrip, redis_b),      BACKEND_TEST(test_missing_times_out, redis_b),
        BACKEND_TEST(test_add_semantics, redis_b),  BACKEND_TEST(test_bad_input, redis_b),
        BACKEND_TEST(test_add_concurrent, redis_b),
        BACKEND_TEST(test_concurrent_writers, redis_b), BACKEND_TEST(test_barrier, redis_b),
    };
    int failed = cmocka_run_group_tests_name("store specs", common, NULL, NULL);
    failed += cmocka_run_group_tests_name("file store", file_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("tcp store", tcp_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("redis store", redis_tests, redis_group_setup,
                                          redis_group_teardown);
    return failed;
}
