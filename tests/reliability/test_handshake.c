/*
 * The authenticated handshake against strangers. While rank 0 is in start-up
 * (waiting for a slow rank 2), a stranger connects to it with junk, an HTTP request,
 * a truncated hello, an old-version hello, a hello from another job, a proof made
 * with another job's key and a replayed proof: each is dropped without an answer
 * beyond the challenge; with a crowd of silent connections open the job then
 * starts and exchanges data, and a stranger
 * that comes after start-up is refused by the kernel. Ranks with different keys
 * fail with PRIDE_ERR_AUTH and a sentence; oob_allgather and a tcp store carry rank
 * 0's generated key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "auth.h"
#include "harness.h"
#include "rel.h"
#include "store.h"
#include "tcp.h"

#define KEY "handshake-test-key"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Wait (bounded) until path exists. */
static int wait_file(const char *path, int ms)
{
    struct stat sb;
    for (int i = 0; i < ms / 10; i++) {
        if (stat(path, &sb) == 0)
            return 1;
        sleep_ms(10);
    }
    return 0;
}

static void touch(const char *path)
{
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Read exactly len bytes within ms; 1 on success. */
static int read_full(int fd, void *buf, size_t len, int ms)
{
    char *p = buf;
    while (len > 0) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, ms) != 1)
            return 0;
        ssize_t n = recv(fd, p, len, 0);
        if (n <= 0)
            return 0;
        p += n;
        len -= (size_t)n;
    }
    return 1;
}

/* The other side must hang up within ms without sending a byte. */
static int dropped(int fd, int ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = poll(&pfd, 1, ms);
    char b;
    ssize_t n = r == 1 ? recv(fd, &b, 1, 0) : 1;
    close(fd);
    return r == 1 && (n == 0 || (n < 0 && errno == ECONNRESET));
}

static int send_all(int fd, const void *b, size_t n)
{
    return send(fd, b, n, MSG_NOSIGNAL) == (ssize_t)n;
}

/* CONNECT as rank 2 of 3, then a PROOF for (nonce_c, nonce_a) made with key. */
static void make_connect(struct auth_hello *h, uint64_t jh)
{
    auth_hello_fill(h, AUTH_HELLO_CONNECT, 2, 3, jh);
    HCHECK(auth_random(h->nonce, sizeof h->nonce) == PRIDE_OK);
}

static void make_proof(struct auth_hello *p, const uint8_t *key, const struct auth_hello *c,
                       const uint8_t *nonce_a, uint64_t jh)
{
    auth_hello_fill(p, AUTH_HELLO_PROOF, 2, 3, jh);
    auth_hello_mac(key, 'C', c->nonce, nonce_a, 2, 0, 3, "pride", p->mac);
}

static int stranger(const char *store, const char *dir)
{
    char why[256];
    struct pride_store *s;
    HCHECK(pride_store_open(store, "pride", 1, 3, 20000, &s, why, sizeof why) == PRIDE_OK);
    void *val;
    size_t len;
    HCHECK(pride_store_get(s, "tcp-addr/0", &val, &len, pride_deadline_ns(20000)) == PRIDE_OK);
    HCHECK(len == sizeof(struct tcp_addr_rec));
    int port = ((struct tcp_addr_rec *)val)->port;
    free(val);
    pride_store_close(s);
    uint64_t jh = auth_job_hash("pride");
    uint8_t key[AUTH_KEY_LEN], other[AUTH_KEY_LEN];
    auth_key_from_passphrase(KEY, key);
    auth_key_from_passphrase("another job's key", other);

    /* a truncated hello stays open while the rest go on */
    struct auth_hello h, ch, pr;
    make_connect(&h, jh);
    int slow = dial(port);
    HCHECK(slow >= 0 && send_all(slow, &h, 40));

    int fd = dial(port);
    uint8_t junk[100];
    HCHECK(auth_random(junk, sizeof junk) == PRIDE_OK);
    HCHECK(fd >= 0 && send_all(fd, junk, sizeof junk) && dropped(fd, 10000));

    const char *http = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    fd = dial(port);
    HCHECK(fd >= 0 && send_all(fd, http, strlen(http)) && dropped(fd, 10000));

    struct {
        uint32_t magic;
        uint16_t version, kind;
        int32_t rank, nranks;
        uint64_t job;
    } v1 = {AUTH_HELLO_MAGIC, 1, 1, 2, 3, jh};
    fd = dial(port);
    HCHECK(fd >= 0 && send_all(fd, &v1, sizeof v1) && dropped(fd, 10000));

    make_connect(&h, auth_job_hash("another job"));
    fd = dial(port);
    HCHECK(fd >= 0 && send_all(fd, &h, sizeof h) && dropped(fd, 10000));

    make_connect(&h, jh); /* a PROOF where a CONNECT is due */
    h.kind = AUTH_HELLO_PROOF;
    fd = dial(port);
    HCHECK(fd >= 0 && send_all(fd, &h, sizeof h) && dropped(fd, 10000));

    /* another job's key: the challenge does not verify with it, the proof is refused */
    make_connect(&h, jh);
    fd = dial(port);
    HCHECK(fd >= 0 && send_all(fd, &h, sizeof h) && read_full(fd, &ch, sizeof ch, 10000));
    uint8_t mac[AUTH_DIGEST_LEN];
    auth_hello_mac(other, 'A', h.nonce, ch.nonce, 2, 0, 3, "pride", mac);
    HCHECK(!auth_equal(mac, ch.mac, sizeof mac));
    make_proof(&pr, other, &h, ch.nonce, jh);
    HCHECK(send_all(fd, &pr, sizeof pr) && dropped(fd, 10000));

    /* a replay: CONNECT and PROOF recorded from an earlier handshake with the real key */
    make_connect(&h, jh);
    uint8_t old_nonce[AUTH_NONCE_LEN];
    HCHECK(auth_random(old_nonce, sizeof old_nonce) == PRIDE_OK);
    make_proof(&pr, key, &h, old_nonce, jh);
    fd = dial(port);
    HCHECK(fd >= 0 && send_all(fd, &h, sizeof h) && read_full(fd, &ch, sizeof ch, 10000));
    auth_hello_mac(key, 'A', h.nonce, ch.nonce, 2, 0, 3, "pride", mac);
    HCHECK(auth_equal(mac, ch.mac, sizeof mac)); /* the recording was made right */
    HCHECK(send_all(fd, &pr, sizeof pr) && dropped(fd, 10000));

    HCHECK(dropped(slow, 15000));

    /* a crowd of silent connections, more than the acceptor keeps, stays open while
       the real rank 2 joins */
    enum { CROWD = 100 };
    int crowd[CROWD];
    for (int i = 0; i < CROWD; i++)
        HCHECK((crowd[i] = dial(port)) >= 0);
    char path[512];
    snprintf(path, sizeof path, "%s/strangers-done", dir);
    touch(path);
    snprintf(path, sizeof path, "%s/mesh-up", dir);
    HCHECK(wait_file(path, 60000));
    for (int i = 0; i < CROWD; i++)
        close(crowd[i]);
    fd = dial(port);
    HCHECK(fd < 0 && errno == ECONNREFUSED);
    return 0;
}

static int strangers_rank(int rank, int nranks, const char *store, void *arg)
{
    (void)arg;
    const char *dir = store + strlen("file:");
    char path[512];
    if (rank == nranks - 1)
        return stranger(store, dir);
    setenv("PRIDE_AUTH_KEY", KEY, 1);
    if (rank == 2) {
        /* The slow rank: a stand-in address lets ranks 0 and 1 finish the address
           exchange and wait in accept for rank 2 (which they never dial); the real
           rank 2 starts once the strangers are done. */
        char why[256];
        struct pride_store *s;
        void *val;
        size_t len;
        HCHECK(pride_store_open(store, "pride", 2, 3, 20000, &s, why, sizeof why) == PRIDE_OK);
        HCHECK(pride_store_get(s, "tcp-addr/0", &val, &len, pride_deadline_ns(20000)) ==
               PRIDE_OK);
        HCHECK(pride_store_set(s, "tcp-addr/2", val, len) == PRIDE_OK);
        free(val);
        pride_store_close(s);
        snprintf(path, sizeof path, "%s/strangers-done", dir);
        HCHECK(wait_file(path, 60000));
    }
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    cfg.rank = rank;
    cfg.nranks = 3;
    cfg.store = store;
    cfg.timeout_ms = 60000;
    pride_context_t *ctx;
    HCHECK_OK(NULL, pride_init(&cfg, &ctx));
    if (rank == 0) {
        snprintf(path, sizeof path, "%s/mesh-up", dir);
        touch(path);
    }
    HCHECK(rel_check_sum(ctx, 1000, 1) == PRIDE_OK);
    pride_finalize(ctx);
    return 0;
}

static void test_strangers_in_startup(void **state)
{
    (void)state;
    assert_int_equal(harness_fork(4, strangers_rank, NULL, NULL), 0);
}

/* Each rank starts with the key in arg[rank] (NULL: none) and stderr in a file; the
   status pride_init returned and what it said come back through the file. */
struct keys {
    const char *key[2];
    int want[2];          /* acceptable statuses: want[r] or PRIDE_ERR_TIMEOUT on rank 0 */
    const char *said[2];  /* what rank r's stderr must contain */
};

static int keyed_rank(int rank, int nranks, const char *store, void *arg)
{
    (void)nranks;
    const struct keys *k = arg;
    char path[512];
    snprintf(path, sizeof path, "%s/stderr-%d", store + strlen("file:"), rank);
    HCHECK(freopen(path, "w", stderr) != NULL);
    if (k->key[rank])
        setenv("PRIDE_AUTH_KEY", k->key[rank], 1);
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    cfg.rank = rank;
    cfg.nranks = 2;
    cfg.store = store;
    cfg.timeout_ms = 3000;
    pride_context_t *ctx = NULL;
    int st = pride_init(&cfg, &ctx);
    if (st == PRIDE_OK) {
        HCHECK(rel_check_sum(ctx, 10, 1) == PRIDE_OK);
        pride_finalize(ctx);
    }
    fflush(stderr);
    FILE *f = fopen(path, "r");
    char text[2048] = "";
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = 0;
    if (f)
        fclose(f);
    HCHECK(st == k->want[rank] || (rank == 0 && st == PRIDE_ERR_TIMEOUT));
    HCHECK(!k->said[rank] || strstr(text, k->said[rank]));
    return 0;
}

static void test_keys(void **state)
{
    (void)state;
    struct keys same = {{"k1", "k1"}, {PRIDE_OK, PRIDE_OK}, {NULL, NULL}};
    assert_int_equal(harness_fork(2, keyed_rank, &same, NULL), 0);
    struct keys differ = {{"k1", "k2"},
                          {PRIDE_ERR_AUTH, PRIDE_ERR_AUTH},
                          {"failed authentication", "different keys"}};
    assert_int_equal(harness_fork(2, keyed_rank, &differ, NULL), 0);
    struct keys half = {{"k1", NULL},
                        {PRIDE_ERR_TIMEOUT, PRIDE_ERR_AUTH},
                        {NULL, "rank 0 has PRIDE_AUTH_KEY set and this rank (1) has not"}};
    assert_int_equal(harness_fork(2, keyed_rank, &half, NULL), 0);
    struct keys other_half = {{NULL, "k1"},
                              {PRIDE_ERR_AUTH, PRIDE_ERR_AUTH},
                              {"failed authentication", "different keys"}};
    assert_int_equal(harness_fork(2, keyed_rank, &other_half, NULL), 0);
}

/* oob_allgather over a store, as a launcher with its own channel would provide. */
struct oob {
    struct pride_store *s;
    int rank, nranks, calls;
};

static int oob_allgather(void *user, const void *mine, void *all, size_t len)
{
    struct oob *o = user;
    char k[64];
    int call = o->calls++;
    snprintf(k, sizeof k, "oob/%d/%d", call, o->rank);
    if (pride_store_set(o->s, k, mine, len) != PRIDE_OK)
        return PRIDE_ERR_IO;
    for (int r = 0; r < o->nranks; r++) {
        void *v;
        size_t l;
        snprintf(k, sizeof k, "oob/%d/%d", call, r);
        if (pride_store_get(o->s, k, &v, &l, pride_deadline_ns(20000)) != PRIDE_OK || l != len)
            return PRIDE_ERR_IO;
        memcpy((char *)all + (size_t)r * len, v, len);
        free(v);
    }
    return PRIDE_OK;
}

static int oob_rank(int rank, int nranks, const char *store, void *arg)
{
    (void)arg;
    char why[256];
    struct oob o = {NULL, rank, nranks, 0};
    HCHECK(pride_store_open(store, "oob", rank, nranks, 20000, &o.s, why, sizeof why) ==
           PRIDE_OK);
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    cfg.rank = rank;
    cfg.nranks = nranks;
    cfg.oob_allgather = oob_allgather;
    cfg.oob_user = &o;
    pride_context_t *ctx;
    HCHECK_OK(NULL, pride_init(&cfg, &ctx));
    HCHECK(rel_check_sum(ctx, 100, 2) == PRIDE_OK);
    pride_finalize(ctx);
    pride_store_close(o.s);
    return 0;
}

static void test_oob_key(void **state)
{
    (void)state;
    assert_int_equal(harness_fork(3, oob_rank, NULL, NULL), 0);
}

/* Without PRIDE_AUTH_KEY, rank 0's key travels through a tcp store (rank 0 serves). */
static int tcp_store_rank(int rank, int nranks, const char *store, void *arg)
{
    (void)store;
    unsetenv("PRIDE_AUTH_KEY");
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    cfg.rank = rank;
    cfg.nranks = nranks;
    cfg.store = arg;
    cfg.timeout_ms = 20000;
    pride_context_t *ctx;
    HCHECK_OK(NULL, pride_init(&cfg, &ctx));
    HCHECK(rel_check_sum(ctx, 1000, 2) == PRIDE_OK);
    pride_finalize(ctx);
    return 0;
}

static void test_generated_key_through_tcp_store(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd); /* the port is free again for rank 0's store server */
    char spec[64];
    snprintf(spec, sizeof spec, "tcp:127.0.0.1:%d", ntohs(sa.sin_port));
    assert_int_equal(harness_fork(3, tcp_store_rank, spec, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strangers_in_startup),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_oob_key),
        cmocka_unit_test(test_generated_key_through_tcp_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
