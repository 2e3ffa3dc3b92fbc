/*
 * tcp:HOST:PORT — rank 0 serves a tiny key-value server; every rank, rank 0 too, is
 * a client of it over one TCP connection.
 *
 * The one idea: the server is a single poll() loop on a background thread that owns
 * the whole table, so it needs no locks, and a client waiting for a key costs
 * nothing: a WAIT request for a missing key parks that connection, and the SET (or
 * ADD) that creates the key answers every parked connection. The client bounds the
 * wait with its own deadline; when it gives up it drops the connection (the server
 * forgets the waiter on EOF) and reconnects on its next call.
 *
 * Wire format, integers big-endian. Request: magic "PRST", version (u16), op (u16),
 * key length (u32), value length (u32), then key and value. Reply: magic, version,
 * status (u16), value length (u32), then the value. The server checks every header
 * field before reading a body, and closes a connection that sends anything else
 * (a wrong magic, a length over the limits, EOF in mid-request): one bad client
 * never costs the others more than that.
 *
 * Rank 0's close lingers (at most the store's timeout) until every other client has
 * disconnected, so a rank still reading the last barrier's counter is not cut off.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pride/status.h"
#include "store.h"
#include "store_impl.h"

#define TCP_MAGIC UINT32_C(0x50525354) /* "PRST" */
#define TCP_VERSION 1
#define TCP_REQ_HDR 16
#define TCP_REP_HDR 12
#define TCP_MAX_KEY (STORE_MAX_JOB + 1 + STORE_MAX_KEY) /* "JOB/key" */
#define TCP_BUCKETS 1024

enum tcp_op { TCP_SET = 1, TCP_GET = 2, TCP_WAIT = 3, TCP_ADD = 4 };
enum tcp_status { TCP_R_OK = 0, TCP_R_ABSENT = 1, TCP_R_NOTINT = 2 };

/* ---- wire helpers ---- */

static void tcp_put16(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void tcp_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void tcp_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static uint32_t tcp_get16(const unsigned char *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t tcp_get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t tcp_get64(const unsigned char *p)
{
    return (uint64_t)tcp_get32(p) << 32 | tcp_get32(p + 4);
}

/* ---- the server (rank 0's background thread) ---- */

struct tcp_entry {
    struct tcp_entry *next;
    unsigned char *val;
    size_t vlen, klen;
    char key[];
};

struct tcp_conn {
    int fd;
    int dead;
    int parked;                        /* WAIT on a missing key: the key is in body */
    unsigned char hdr[TCP_REQ_HDR];    /* the request being read */
    size_t hdr_len;
    unsigned char *body;               /* key, then value */
    size_t body_len, body_need;
    unsigned char *out;                /* the reply being written */
    size_t out_len, out_off;
};

struct tcp_server {
    pthread_t thread;
    int lfd, wakefd;
    atomic_int stopping;
    atomic_llong linger_deadline;
    int64_t accept_pause; /* out of descriptors: do not poll lfd before this time */
    struct tcp_entry *buckets[TCP_BUCKETS];
    struct tcp_conn *conns;
    size_t nconns, capconns;
    struct pollfd *pfds;
    size_t cappfds;
};

static uint32_t tcp_hash(const unsigned char *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 16777619u;
    return h % TCP_BUCKETS;
}

static struct tcp_entry *tcp_find(struct tcp_server *srv, const unsigned char *k, size_t n)
{
    for (struct tcp_entry *e = srv->buckets[tcp_hash(k, n)]; e; e = e->next)
        if (e->klen == n && !memcmp(e->key, k, n))
            return e;
    return NULL;
}

/* Insert or replace; takes ownership of val. 0, or -1 when out of memory. */
static int tcp_put(struct tcp_server *srv, const unsigned char *k, size_t n, unsigned char *val,
                   size_t vlen)
{
    struct tcp_entry *e = tcp_find(srv, k, n);
    if (!e) {
        e = malloc(sizeof *e + n);
        if (!e)
            return -1;
        memcpy(e->key, k, n);
        e->klen = n;
        e->val = NULL;
        uint32_t b = tcp_hash(k, n);
        e->next = srv->buckets[b];
        srv->buckets[b] = e;
    }
    free(e->val);
    e->val = val;
    e->vlen = vlen;
    return 0;
}

/* Write what is pending without blocking; a failed peer is marked dead. */
static void tcp_conn_flush(struct tcp_conn *c)
{
    while (!c->dead && c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w <= 0) {
            c->dead = 1;
            return;
        }
        c->out_off += (size_t)w;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
}

static void tcp_conn_reply(struct tcp_conn *c, uint32_t status, const void *val, size_t vlen)
{
    c->out = malloc(TCP_REP_HDR + vlen);
    if (!c->out) { /* the client sees EOF and reports it; the server carries on */
        c->dead = 1;
        return;
    }
    tcp_put32(c->out, TCP_MAGIC);
    tcp_put16(c->out + 4, TCP_VERSION);
    tcp_put16(c->out + 6, status);
    tcp_put32(c->out + 8, (uint32_t)vlen);
    if (vlen > 0)
        memcpy(c->out + TCP_REP_HDR, val, vlen);
    c->out_len = TCP_REP_HDR + vlen;
    c->out_off = 0;
    tcp_conn_flush(c);
}

static void tcp_conn_done(struct tcp_conn *c)
{
    free(c->body);
    c->body = NULL;
    c->hdr_len = c->body_len = c->body_need = 0;
    c->parked = 0;
}

/* Key e now exists: answer every connection parked on it. */
static void tcp_wake_waiters(struct tcp_server *srv, const struct tcp_entry *e)
{
    for (size_t i = 0; i < srv->nconns; i++) {
        struct tcp_conn *c = &srv->conns[i];
        if (!c->dead && c->parked && tcp_get32(c->hdr + 8) == e->klen &&
            !memcmp(c->body, e->key, e->klen)) {
            tcp_conn_done(c);
            tcp_conn_reply(c, TCP_R_OK, e->val, e->vlen);
        }
    }
}

/* A whole request is in c: carry it out. */
static void tcp_serve_request(struct tcp_server *srv, struct tcp_conn *c)
{
    uint32_t op = tcp_get16(c->hdr + 6), klen = tcp_get32(c->hdr + 8);
    size_t vlen = c->body_len - klen;
    const unsigned char *key = c->body, *val = c->body + klen;
    struct tcp_entry *e = tcp_find(srv, key, klen);
    if (op == TCP_SET || op == TCP_ADD) {
        unsigned char res[8];
        char txt[STORE_INT_CHARS];
        const void *nv = val;
        size_t nl = vlen;
        if (op == TCP_ADD) {
            int64_t delta = (int64_t)tcp_get64(val), v = 0;
            if ((e && store_int_parse(e->val, e->vlen, &v) != PRIDE_OK) ||
                (delta > 0 && v > INT64_MAX - delta) || (delta < 0 && v < INT64_MIN - delta)) {
                tcp_conn_done(c);
                tcp_conn_reply(c, TCP_R_NOTINT, NULL, 0);
                return;
            }
            tcp_put64(res, (uint64_t)(v + delta));
            nl = store_int_format(v + delta, txt);
            nv = txt;
        }
        unsigned char *copy = malloc(nl ? nl : 1);
        if (!copy || tcp_put(srv, key, klen, copy, nl) != 0) {
            free(copy);
            c->dead = 1;
            return;
        }
        memcpy(copy, nv, nl);
        e = tcp_find(srv, key, klen);
        tcp_conn_done(c);
        tcp_wake_waiters(srv, e);
        tcp_conn_reply(c, TCP_R_OK, res, op == TCP_ADD ? sizeof res : 0);
    } else if (op == TCP_GET || e) {
        tcp_conn_done(c);
        if (e)
            tcp_conn_reply(c, TCP_R_OK, e->val, e->vlen);
        else
            tcp_conn_reply(c, TCP_R_ABSENT, NULL, 0);
    } else { /* TCP_WAIT for a key nobody has set yet */
        c->parked = 1;
    }
}

/* The header is complete: accept it (and size the body) or condemn the client. */
static int tcp_header_ok(struct tcp_conn *c)
{
    uint32_t op = tcp_get16(c->hdr + 6), klen = tcp_get32(c->hdr + 8),
             vlen = tcp_get32(c->hdr + 12);
    if (tcp_get32(c->hdr) != TCP_MAGIC || tcp_get16(c->hdr + 4) != TCP_VERSION)
        return 0;
    if (klen < 1 || klen > TCP_MAX_KEY)
        return 0;
    if (!(op == TCP_SET && vlen <= STORE_MAX_VALUE) &&
        !((op == TCP_GET || op == TCP_WAIT) && vlen == 0) && !(op == TCP_ADD && vlen == 8))
        return 0;
    c->body_need = (size_t)klen + vlen;
    c->body = malloc(c->body_need);
    return c->body != NULL;
}

/* c is readable. Read at most the request in progress; serve it when complete. */
static void tcp_conn_read(struct tcp_server *srv, struct tcp_conn *c)
{
    while (!c->dead && !c->out && !c->parked) {
        int in_hdr = c->hdr_len < TCP_REQ_HDR;
        unsigned char *dst = in_hdr ? c->hdr + c->hdr_len : c->body + c->body_len;
        size_t want = in_hdr ? TCP_REQ_HDR - c->hdr_len : c->body_need - c->body_len;
        ssize_t r = recv(c->fd, dst, want, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) { /* EOF (a truncated request, or just goodbye) or an error */
            c->dead = 1;
            return;
        }
        if (in_hdr) {
            c->hdr_len += (size_t)r;
            if (c->hdr_len == TCP_REQ_HDR && !tcp_header_ok(c))
                c->dead = 1;
        } else {
            c->body_len += (size_t)r;
        }
        if (!c->dead && c->hdr_len == TCP_REQ_HDR && c->body_len == c->body_need)
            tcp_serve_request(srv, c);
    }
    if (c->parked) { /* a parked client may only hang up: anything else is a violation */
        unsigned char b;
        ssize_t r = recv(c->fd, &b, 1, 0);
        if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            c->dead = 1;
    }
}

static void tcp_accept(struct tcp_server *srv)
{
    for (;;) {
        int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                       errno == ENOMEM)) {
            /* lfd stays readable: rest a while instead of spinning on it */
            srv->accept_pause = pride_now_ns() + 100000000LL;
            return;
        }
        if (fd < 0)
            return; /* EAGAIN, or a connection that died in the queue: nothing to do */
        if (srv->nconns == srv->capconns) {
            size_t cap = srv->capconns ? 2 * srv->capconns : 16;
            struct tcp_conn *nc = realloc(srv->conns, cap * sizeof *nc);
            if (!nc) {
                close(fd);
                return;
            }
            srv->conns = nc;
            srv->capconns = cap;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        srv->conns[srv->nconns++] = (struct tcp_conn){.fd = fd};
    }
}

static void tcp_reap(struct tcp_server *srv)
{
    size_t j = 0;
    for (size_t i = 0; i < srv->nconns; i++) {
        struct tcp_conn *c = &srv->conns[i];
        if (c->dead) {
            close(c->fd);
            free(c->body);
            free(c->out);
        } else {
            srv->conns[j++] = *c;
        }
    }
    srv->nconns = j;
}

static void *tcp_server_main(void *arg)
{
    struct tcp_server *srv = arg;
    for (;;) {
        int stopping = atomic_load(&srv->stopping);
        int64_t now = pride_now_ns(), until = INT64_MAX;
        if (stopping) {
            until = atomic_load(&srv->linger_deadline);
            if (srv->nconns == 0 || now >= until)
                break;
        }
        int listening = !stopping && now >= srv->accept_pause;
        if (!stopping && !listening)
            until = srv->accept_pause;
        int timeout = until == INT64_MAX ? -1 : (int)((until - now) / 1000000) + 1;
        size_t n = 2 + srv->nconns;
        if (n > srv->cappfds) {
            struct pollfd *np = realloc(srv->pfds, 2 * n * sizeof *np);
            if (!np) { /* cannot watch everyone: drop the newest, keep serving */
                srv->conns[srv->nconns - 1].dead = 1;
                tcp_reap(srv);
                continue;
            }
            srv->pfds = np;
            srv->cappfds = 2 * n;
        }
        srv->pfds[0] = (struct pollfd){.fd = srv->wakefd, .events = POLLIN};
        srv->pfds[1] = (struct pollfd){.fd = listening ? srv->lfd : -1, .events = POLLIN};
        for (size_t i = 0; i < srv->nconns; i++)
            srv->pfds[2 + i] = (struct pollfd){
                .fd = srv->conns[i].fd, .events = srv->conns[i].out ? POLLOUT : POLLIN};
        size_t watched = srv->nconns;
        if (poll(srv->pfds, n, timeout) < 0)
            continue; /* EINTR */
        if (srv->pfds[0].revents) {
            uint64_t v;
            ssize_t r = read(srv->wakefd, &v, sizeof v);
            (void)r;
        }
        for (size_t i = 0; i < watched; i++) {
            struct tcp_conn *c = &srv->conns[i];
            short ev = srv->pfds[2 + i].revents;
            if (!ev || c->dead)
                continue;
            if (ev & (POLLERR | POLLNVAL))
                c->dead = 1;
            else if (c->out)
                tcp_conn_flush(c);
            if (!c->dead && !c->out)
                tcp_conn_read(srv, c);
        }
        tcp_reap(srv);
        if (srv->pfds[1].revents)
            tcp_accept(srv);
    }
    return NULL;
}

static void tcp_server_free(struct tcp_server *srv)
{
    for (size_t i = 0; i < srv->nconns; i++)
        srv->conns[i].dead = 1;
    tcp_reap(srv);
    for (size_t b = 0; b < TCP_BUCKETS; b++) {
        while (srv->buckets[b]) {
            struct tcp_entry *e = srv->buckets[b];
            srv->buckets[b] = e->next;
            free(e->val);
            free(e);
        }
    }
    if (srv->lfd >= 0)
        close(srv->lfd);
    if (srv->wakefd >= 0)
        close(srv->wakefd);
    free(srv->conns);
    free(srv->pfds);
    free(srv);
}

/* Bind HOST:PORT and start serving. */
static int tcp_server_start(const char *host, const char *port, struct tcp_server **out,
                            char *why, size_t whylen)
{
    struct tcp_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(why, whylen, "tcp store: out of memory");
        return PRIDE_ERR_NOMEM;
    }
    srv->lfd = -1;
    srv->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int st = PRIDE_ERR_IO;
    if (srv->wakefd < 0) {
        snprintf(why, whylen, "tcp store: eventfd: %s", strerror(errno));
        goto fail;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(why, whylen, "tcp store: cannot resolve %s to serve on: %s", host,
                 gai_strerror(gai));
        goto fail;
    }
    int err = 0;
    for (struct addrinfo *ai = res; ai && srv->lfd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
            srv->lfd = fd;
        } else {
            err = errno;
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (srv->lfd < 0) {
        snprintf(why, whylen, "tcp store: cannot serve on %s port %s: %s", host, port,
                 strerror(err));
        goto fail;
    }
    if ((err = pthread_create(&srv->thread, NULL, tcp_server_main, srv)) != 0) {
        snprintf(why, whylen, "tcp store: cannot start the server thread: %s", strerror(err));
        goto fail;
    }
    *out = srv;
    return PRIDE_OK;
fail:
    tcp_server_free(srv);
    return st;
}

static void tcp_server_stop(struct tcp_server *srv, int linger_ms)
{
    atomic_store(&srv->linger_deadline, pride_deadline_ns(linger_ms));
    atomic_store(&srv->stopping, 1);
    uint64_t one = 1;
    ssize_t w = write(srv->wakefd, &one, sizeof one);
    (void)w; /* the counter cannot overflow with one write */
    pthread_join(srv->thread, NULL);
    tcp_server_free(srv);
}

/* ---- the client (every rank) ---- */

struct tcp_store {
    struct pride_store base;
    pthread_mutex_t mu; /* one request at a time on fd */
    int fd;             /* -1: connect on the next call */
    int timeout_ms;
    char host[256], port[8];
    char job[STORE_MAX_JOB + 1];
    struct tcp_server *srv; /* rank 0 only */
};

/* Wait for fd to become ready for events, until the deadline (past it: one look). */
static int tcp_wait_fd(int fd, short events, int64_t deadline_ns)
{
    for (;;) {
        int64_t left = deadline_ns - pride_now_ns();
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left > 0 ? (int)(left / 1000000) + 1 : 0);
        if (r > 0)
            return PRIDE_OK;
        if (r < 0 && errno != EINTR)
            return PRIDE_ERR_IO;
        if (r == 0 && left <= 0)
            return PRIDE_ERR_TIMEOUT;
    }
}

/* One attempt at every address of HOST:PORT; the connected socket or -1 (errno kept
   in *err). */
static int tcp_try_connect(struct tcp_store *ts, int64_t deadline_ns, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
    int gai = getaddrinfo(ts->host, ts->port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "%s", gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            snprintf(err, errlen, "socket: %s", strerror(errno));
            continue;
        }
        int e = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        if (e == EINPROGRESS) {
            socklen_t sl = sizeof e;
            if (tcp_wait_fd(fd, POLLOUT, deadline_ns) != PRIDE_OK)
                e = ETIMEDOUT;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0)
                e = errno;
        }
        if (e != 0) {
            snprintf(err, errlen, "%s", strerror(e));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* Connect, retrying with backoff until the deadline: rank 0 may not serve yet. */
static int tcp_connect(struct tcp_store *ts, int64_t deadline_ns)
{
    char err[128] = "no attempt before the deadline";
    int64_t delay = 0;
    do {
        ts->fd = tcp_try_connect(ts, deadline_ns, err, sizeof err);
        if (ts->fd >= 0)
            return PRIDE_OK;
    } while (store_backoff(&delay, deadline_ns) == PRIDE_OK);
    return store_fail(&ts->base, PRIDE_ERR_TIMEOUT, "tcp store: cannot connect to %s port %s "
                      "before the deadline (is rank 0 serving it?): %s", ts->host, ts->port, err);
}

static int tcp_io(struct tcp_store *ts, int sending, void *buf, size_t len, int64_t deadline_ns,
                  const char *what)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = sending ? send(ts->fd, (char *)buf + done, len - done, MSG_NOSIGNAL)
                            : recv(ts->fd, (char *)buf + done, len - done, 0);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int st = tcp_wait_fd(ts->fd, sending ? POLLOUT : POLLIN, deadline_ns);
            if (st == PRIDE_ERR_TIMEOUT)
                return store_fail(&ts->base, st, "tcp store: %s: no answer from %s port %s "
                                  "before the deadline", what, ts->host, ts->port);
            if (st != PRIDE_OK)
                return store_fail(&ts->base, st, "tcp store: %s: poll: %s", what,
                                  strerror(errno));
            continue;
        }
        return store_fail(&ts->base, PRIDE_ERR_PEER, "tcp store: %s: the server at %s port %s "
                          "%s", what, ts->host, ts->port,
                          r == 0 ? "closed the connection" : strerror(errno));
    }
    return PRIDE_OK;
}

/* One request and its reply. On PRIDE_OK, *status is the server's answer and *val
   (malloc'd, *vlen bytes) its value. Any failure drops the connection. */
static int tcp_call(struct tcp_store *ts, uint32_t op, const char *key, const void *val,
                    size_t vlen, int64_t deadline_ns, uint32_t *status, void **rval,
                    size_t *rlen)
{
    static const char *const names[] = {"", "set", "get", "get", "add"};
    char what[64 + STORE_MAX_KEY];
    snprintf(what, sizeof what, "%s of key \"%s\"", names[op], key);
    unsigned char req[TCP_REQ_HDR + TCP_MAX_KEY + 1], rep[TCP_REP_HDR]; /* +1: the NUL */
    size_t klen = (size_t)snprintf((char *)req + TCP_REQ_HDR, TCP_MAX_KEY + 1, "%s/%s",
                                   ts->job, key);
    tcp_put32(req, TCP_MAGIC);
    tcp_put16(req + 4, TCP_VERSION);
    tcp_put16(req + 6, op);
    tcp_put32(req + 8, (uint32_t)klen);
    tcp_put32(req + 12, (uint32_t)vlen);
    unsigned char *v = NULL;

    pthread_mutex_lock(&ts->mu);
    int st = ts->fd >= 0 ? PRIDE_OK : tcp_connect(ts, deadline_ns);
    if (st == PRIDE_OK)
        st = tcp_io(ts, 1, req, TCP_REQ_HDR + klen, deadline_ns, what);
    if (st == PRIDE_OK && vlen > 0)
        st = tcp_io(ts, 1, (void *)val, vlen, deadline_ns, what);
    if (st == PRIDE_OK)
        st = tcp_io(ts, 0, rep, sizeof rep, deadline_ns, what);
    uint32_t n = st == PRIDE_OK ? tcp_get32(rep + 8) : 0;
    if (st == PRIDE_OK && (tcp_get32(rep) != TCP_MAGIC || tcp_get16(rep + 4) != TCP_VERSION ||
                           tcp_get16(rep + 6) > TCP_R_NOTINT || n > STORE_MAX_VALUE))
        st = store_fail(&ts->base, PRIDE_ERR_PEER, "tcp store: %s: %s port %s answered with "
                        "something that is not a pride store reply", what, ts->host, ts->port);
    if (st == PRIDE_OK && !(v = malloc(n ? n : 1)))
        st = store_fail(&ts->base, PRIDE_ERR_NOMEM, "tcp store: %s: out of memory", what);
    if (st == PRIDE_OK)
        st = tcp_io(ts, 0, v, n, deadline_ns, what);
    if (st != PRIDE_OK && ts->fd >= 0) {
        close(ts->fd);
        ts->fd = -1;
    }
    pthread_mutex_unlock(&ts->mu);
    if (st != PRIDE_OK) {
        free(v);
        return st;
    }
    *status = tcp_get16(rep + 6);
    *rval = v;
    *rlen = n;
    return PRIDE_OK;
}

static int tcp_set(struct pride_store *s, const char *key, const void *val, size_t len)
{
    struct tcp_store *ts = (struct tcp_store *)s;
    uint32_t status;
    void *r;
    size_t rl;
    int st = tcp_call(ts, TCP_SET, key, val, len, pride_deadline_ns(ts->timeout_ms), &status,
                      &r, &rl);
    if (st != PRIDE_OK)
        return st;
    free(r);
    if (status != TCP_R_OK)
        return store_fail(s, PRIDE_ERR_PEER, "tcp store: set of key \"%s\": the server "
                          "answered status %" PRIu32, key, status);
    return PRIDE_OK;
}

static int tcp_get(struct pride_store *s, const char *key, void **val, size_t *len,
                   int64_t deadline_ns)
{
    struct tcp_store *ts = (struct tcp_store *)s;
    /* A deadline already past still gets one look, with the usual time to answer. */
    int look = deadline_ns <= pride_now_ns();
    uint32_t status;
    void *r;
    size_t rl;
    int st = tcp_call(ts, look ? TCP_GET : TCP_WAIT, key, NULL, 0,
                      look ? pride_deadline_ns(ts->timeout_ms) : deadline_ns, &status, &r, &rl);
    if (st == PRIDE_ERR_TIMEOUT && !look)
        return store_fail(s, st, "tcp store: key \"%s\" did not appear on %s port %s before "
                          "the deadline", key, ts->host, ts->port);
    if (st != PRIDE_OK)
        return st;
    if (status != TCP_R_OK) {
        free(r);
        if (status == TCP_R_ABSENT)
            return store_fail(s, PRIDE_ERR_TIMEOUT, "tcp store: key \"%s\" is not set (the "
                              "deadline had passed)", key);
        return store_fail(s, PRIDE_ERR_PEER, "tcp store: get of key \"%s\": the server "
                          "answered status %" PRIu32, key, status);
    }
    *val = r;
    *len = rl;
    return PRIDE_OK;
}

static int tcp_add(struct pride_store *s, const char *key, int64_t delta, int64_t *result)
{
    struct tcp_store *ts = (struct tcp_store *)s;
    unsigned char d[8];
    tcp_put64(d, (uint64_t)delta);
    uint32_t status;
    void *r;
    size_t rl;
    int st = tcp_call(ts, TCP_ADD, key, d, sizeof d, pride_deadline_ns(ts->timeout_ms), &status,
                      &r, &rl);
    if (st != PRIDE_OK)
        return st;
    if (status == TCP_R_OK && rl == 8)
        *result = (int64_t)tcp_get64(r);
    else if (status == TCP_R_NOTINT)
        st = store_fail(s, PRIDE_ERR_INVALID, "tcp store: key \"%s\" does not hold a counter, "
                        "or adding %" PRId64 " overflows it", key, delta);
    else
        st = store_fail(s, PRIDE_ERR_PEER, "tcp store: add to key \"%s\": the server answered "
                        "status %" PRIu32 " with %zu bytes", key, status, rl);
    free(r);
    return st;
}

static void tcp_free(struct tcp_store *ts, int linger_ms)
{
    if (ts->fd >= 0)
        close(ts->fd);
    if (ts->srv)
        tcp_server_stop(ts->srv, linger_ms);
    pthread_mutex_destroy(&ts->mu);
    free(ts);
}

static void tcp_close(struct pride_store *s)
{
    struct tcp_store *ts = (struct tcp_store *)s;
    tcp_free(ts, ts->timeout_ms);
}

static int tcp_open(const char *spec, const char *job, int rank, int nranks, int timeout_ms,
                    struct pride_store **out, char *why, size_t whylen)
{
    (void)nranks;
    struct tcp_store *ts = calloc(1, sizeof *ts);
    if (!ts) {
        snprintf(why, whylen, "tcp store: out of memory");
        return PRIDE_ERR_NOMEM;
    }
    ts->base.ops = &pride_store_tcp_ops;
    ts->fd = -1;
    ts->timeout_ms = timeout_ms;
    snprintf(ts->job, sizeof ts->job, "%s", job);
    int port;
    int st = store_hostport(spec, ts->host, sizeof ts->host, &port, why, whylen);
    if (st != PRIDE_OK) {
        free(ts);
        return st;
    }
    snprintf(ts->port, sizeof ts->port, "%d", port);
    pthread_mutex_init(&ts->mu, NULL);
    if (rank == 0 && (st = tcp_server_start(ts->host, ts->port, &ts->srv, why, whylen)) != 0)
        goto fail;
    if ((st = tcp_connect(ts, pride_deadline_ns(timeout_ms))) != PRIDE_OK) {
        snprintf(why, whylen, "%s", ts->base.why);
        goto fail;
    }
    *out = &ts->base;
    return PRIDE_OK;
fail:
    tcp_free(ts, 0);
    return st;
}

const struct pride_store_ops pride_store_tcp_ops = {
    .size = sizeof(struct pride_store_ops),
    .scheme = "tcp",
    .open = tcp_open,
    .set = tcp_set,
    .get = tcp_get,
    .add = tcp_add,
    .close = tcp_close,
};
