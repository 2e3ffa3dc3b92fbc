/*
 * tcp start-up: choose an address, listen, publish it through the store, and build
 * the full mesh. Rank i connects to every rank below it and accepts every rank above
 * it, so no two ranks wait on each other. Every connection proves that both ends
 * hold the job key before a byte of payload is read (auth.h: nonces both ways, an
 * HMAC each way). The key is PRIDE_AUTH_KEY's hash, or one rank 0 draws from the
 * kernel and passes on through the store (or oob_allgather) before the addresses:
 * then whoever can read the store can join, so on a shared network give every rank
 * PRIDE_AUTH_KEY. The handshake proves who opened a connection, not what travels on
 * it afterwards (no encryption, no per-frame MAC).
 *
 * The acceptor runs every pending handshake at once from one poll loop, so a
 * stranger that connects and says nothing, or says too little, costs a slot for a
 * few seconds and never delays the ranks; junk is dropped at its first wrong byte.
 * The listening socket is closed once the mesh is complete: later connections are
 * refused by the kernel.
 *
 * Address: with PRIDE_IFNAME (an interface name or a literal IPv4/IPv6 address) that
 * address is bound and published. Without it the socket listens on every address,
 * and peers in the same network namespace of the same host connect over loopback,
 * others to this host's first non-loopback address.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "tcp.h"

/* A stranger (or a rank) has this long to finish its handshake once accepted. */
#define PEND_TIME_NS INT64_C(5000000000)
/* Handshakes in progress at once; a flood beyond that pushes out the oldest. */
#define PEND_MAX 64

static void host_id(char *out, size_t len)
{
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    struct stat st;
    unsigned long long ns = stat("/proc/self/ns/net", &st) == 0 ? (unsigned long long)st.st_ino : 0;
    snprintf(out, len, "%s/net:%llu", host, ns);
}

/* Resolve PRIDE_IFNAME: an interface (first IPv4, else first IPv6) or a literal address. */
static int resolve_ifname(const char *name, struct sockaddr_storage *ss, socklen_t *sl, char *why,
                          size_t wl)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, name, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        *sl = sizeof *s4;
        return PRIDE_OK;
    }
    if (inet_pton(AF_INET6, name, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        *sl = sizeof *s6;
        return PRIDE_OK;
    }
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) != 0) {
        snprintf(why, wl, "getifaddrs: %s", strerror(errno));
        return PRIDE_ERR_TRANSPORT;
    }
    int found = 0;
    for (int fam = 0; fam < 2 && !found; fam++) {
        for (i = ifs; i && !found; i = i->ifa_next) {
            if (!i->ifa_addr || strcmp(i->ifa_name, name))
                continue;
            if (fam == 0 && i->ifa_addr->sa_family == AF_INET) {
                memcpy(s4, i->ifa_addr, sizeof *s4);
                *sl = sizeof *s4;
                found = 1;
            } else if (fam == 1 && i->ifa_addr->sa_family == AF_INET6) {
                memcpy(s6, i->ifa_addr, sizeof *s6);
                *sl = sizeof *s6;
                found = 1;
            }
        }
    }
    freeifaddrs(ifs);
    if (!found) {
        snprintf(why, wl, "PRIDE_IFNAME=%s is neither an address nor an interface with an IP "
                          "address on this host", name);
        return PRIDE_ERR_TRANSPORT;
    }
    return PRIDE_OK;
}

/* First IPv4 address of an interface that is up and not loopback; 127.0.0.1 if none. */
static void default_addr(struct tcp_addr_rec *rec)
{
    struct ifaddrs *ifs, *i;
    in_addr_t a = htonl(INADDR_LOOPBACK);
    if (getifaddrs(&ifs) == 0) {
        for (i = ifs; i; i = i->ifa_next) {
            if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_UP) &&
                !(i->ifa_flags & IFF_LOOPBACK)) {
                a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
                break;
            }
        }
        freeifaddrs(ifs);
    }
    rec->family = 4;
    memcpy(rec->addr, &a, 4);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Move exactly len bytes on a non-blocking socket before the deadline. */
static int io_full(int fd, void *buf, size_t len, int64_t deadline, int writing)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return PRIDE_ERR_PEER;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return PRIDE_ERR_PEER;
        int64_t left = deadline - pride_now_ns();
        if (left <= 0)
            return PRIDE_ERR_TIMEOUT;
        struct pollfd pfd = {fd, writing ? POLLOUT : POLLIN, 0};
        poll(&pfd, 1, (int)(left / 1000000 + 1));
    }
    return PRIDE_OK;
}

static void tune_socket(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void rec_sockaddr(const struct tcp_addr_rec *rec, int use_loopback, struct sockaddr_storage *ss,
                         socklen_t *sl)
{
    memset(ss, 0, sizeof *ss);
    if (rec->family == 6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(rec->port);
        if (use_loopback)
            s6->sin6_addr = in6addr_loopback;
        else
            memcpy(&s6->sin6_addr, rec->addr, 16);
        s6->sin6_scope_id = rec->scope_id;
        *sl = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(rec->port);
        if (use_loopback)
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else
            memcpy(&s4->sin_addr, rec->addr, 4);
        *sl = sizeof *s4;
    }
}

/* Everything a handshake needs to know about this rank. */
struct hs {
    struct pride_tp *tp;
    uint8_t key[AUTH_KEY_LEN];
    uint64_t jh;
    const char *job;
};

/* The job key: PRIDE_AUTH_KEY's hash, or rank 0's random key. Rank 0 publishes a
   one-byte marker instead when it has PRIDE_AUTH_KEY, so a rank without it can say
   what is wrong; a key given by the user never travels. */
static int job_key(pride_context_t *ctx, uint8_t key[AUTH_KEY_LEN])
{
    const char *pass = getenv("PRIDE_AUTH_KEY");
    int have = pass && *pass;
    struct {
        uint8_t from_env;
        uint8_t key[AUTH_KEY_LEN];
    } mine, *all = NULL;
    memset(&mine, 0, sizeof mine);
    mine.from_env = (uint8_t)have;
    int st = PRIDE_OK;
    if (have)
        auth_key_from_passphrase(pass, key);
    else if (ctx->rank == 0 && auth_random(mine.key, sizeof mine.key) != PRIDE_OK)
        return pride_error(ctx, PRIDE_ERR_IO, "cannot read random bytes for the job key: %s",
                           strerror(errno));
    if (ctx->oob_allgather) { /* everyone takes part; rank 0's entry is the one */
        all = calloc((size_t)ctx->nranks, sizeof mine);
        if (!all)
            return pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for the job key exchange");
        st = pride_bootstrap_allgather(ctx, "auth-key", &mine, all, sizeof mine);
        if (st == PRIDE_OK)
            mine = all[0];
    } else if (ctx->rank == 0) {
        st = pride_store_set(ctx->store, "auth-key", &mine, have ? 1 : sizeof mine);
        if (st)
            pride_error(ctx, st, "cannot publish the job key: %s", ctx->store->why);
    } else if (!have) {
        void *val = NULL;
        size_t len = 0;
        st = pride_store_get(ctx->store, "auth-key", &val, &len,
                             pride_deadline_ns(ctx->timeout_ms));
        if (st)
            pride_error(ctx, st,
                        "rank 0 never published the job key within %d ms (is it running, with "
                        "the same store and job?): %s",
                        ctx->timeout_ms, ctx->store->why);
        else if ((len != 1 && len != sizeof mine) || (len == 1) != (((uint8_t *)val)[0] == 1))
            st = pride_error(ctx, PRIDE_ERR_AUTH, "rank 0 published a job key this build cannot "
                                                  "read (another pride version?)");
        else
            memcpy(&mine, val, len);
        if (val)
            explicit_bzero(val, len);
        free(val);
    }
    if (all)
        explicit_bzero(all, (size_t)ctx->nranks * sizeof mine);
    free(all);
    if (!st && !have && ctx->rank != 0 && mine.from_env)
        st = pride_error(ctx, PRIDE_ERR_AUTH,
                         "rank 0 has PRIDE_AUTH_KEY set and this rank (%d) has not: give every "
                         "rank the same PRIDE_AUTH_KEY",
                         ctx->rank);
    if (!st && !have)
        memcpy(key, mine.key, AUTH_KEY_LEN);
    explicit_bzero(&mine, sizeof mine);
    return st;
}

static int connect_peer(const struct hs *hs, int j, const struct tcp_addr_rec *mine,
                        const struct tcp_addr_rec *rec, int64_t deadline)
{
    struct pride_tp *tp = hs->tp;
    pride_context_t *ctx = tp->ctx;
    struct sockaddr_storage ss;
    socklen_t sl;
    int loop = !rec->bound && !strcmp(rec->host_id, mine->host_id);
    rec_sockaddr(rec, loop, &ss, &sl);
    char astr[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, astr, sizeof astr);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, astr, sizeof astr);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "socket: %s", strerror(errno));
    int st;
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
        st = pride_error(ctx, PRIDE_ERR_PEER, "connect to rank %d at %s port %u: %s", j, astr,
                         rec->port, strerror(errno));
        goto fail;
    }
    struct pollfd pfd = {fd, POLLOUT, 0};
    int64_t left = deadline - pride_now_ns();
    if (left <= 0 || poll(&pfd, 1, (int)(left / 1000000 + 1)) != 1) {
        st = pride_error(ctx, PRIDE_ERR_TIMEOUT, "connect to rank %d at %s port %u timed out", j,
                         astr, rec->port);
        goto fail;
    }
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        st = pride_error(ctx, PRIDE_ERR_PEER, "connect to rank %d at %s port %u: %s", j, astr,
                         rec->port, strerror(err));
        goto fail;
    }
    tune_socket(fd);
    struct auth_hello out, in;
    auth_hello_fill(&out, AUTH_HELLO_CONNECT, tp->rank, tp->nranks, hs->jh);
    if (auth_random(out.nonce, sizeof out.nonce) != PRIDE_OK) {
        st = pride_error(ctx, PRIDE_ERR_IO, "cannot read random bytes for a handshake nonce");
        goto fail;
    }
    st = io_full(fd, &out, sizeof out, deadline, 1);
    if (st == PRIDE_OK)
        st = io_full(fd, &in, sizeof in, deadline, 0);
    if (st != PRIDE_OK) {
        pride_error(ctx, st, "handshake with rank %d at %s port %u: %s", j, astr, rec->port,
                    st == PRIDE_ERR_TIMEOUT
                        ? "no answer in time"
                        : "connection closed (the rank dropped it: another pride version?)");
        goto fail;
    }
    char why[200];
    struct auth_expect e = {AUTH_HELLO_CHALLENGE, tp->rank, j, tp->nranks, hs->jh};
    if (auth_hello_check(&in, sizeof in, &e, why, sizeof why) != 1) {
        st = pride_error(ctx, PRIDE_ERR_AUTH, "rank %d at %s port %u answered the handshake "
                         "wrongly: %s", j, astr, rec->port, why);
        goto fail;
    }
    uint8_t mac[AUTH_DIGEST_LEN];
    auth_hello_mac(hs->key, 'A', out.nonce, in.nonce, tp->rank, j, tp->nranks, hs->job, mac);
    if (!auth_equal(mac, in.mac, sizeof mac)) {
        st = pride_error(ctx, PRIDE_ERR_AUTH,
                         "rank %d at %s port %u could not prove it holds this job's key: the "
                         "ranks have different keys (give every rank the same PRIDE_AUTH_KEY, "
                         "or none)",
                         j, astr, rec->port);
        goto fail;
    }
    struct auth_hello proof;
    auth_hello_fill(&proof, AUTH_HELLO_PROOF, tp->rank, tp->nranks, hs->jh);
    auth_hello_mac(hs->key, 'C', out.nonce, in.nonce, tp->rank, j, tp->nranks, hs->job,
                   proof.mac);
    st = io_full(fd, &proof, sizeof proof, deadline, 1);
    if (st != PRIDE_OK) {
        pride_error(ctx, st, "handshake with rank %d at %s port %u: connection closed before "
                    "this rank's proof was sent", j, astr, rec->port);
        goto fail;
    }
    tp->peers[j].fd = fd;
    return PRIDE_OK;
fail:
    close(fd);
    return st;
}

/* One accepted connection in the middle of its handshake. */
struct pend {
    int fd;
    int proof_due; /* 0: reading CONNECT; 1: CHALLENGE sent, reading PROOF */
    int rank;
    size_t got;
    int64_t deadline;
    struct auth_hello in;
    uint8_t nonce_c[AUTH_NONCE_LEN], nonce_a[AUTH_NONCE_LEN];
};

/* Why the last connection that named a rank of this job failed its proof. */
struct auth_note {
    int rank; /* -1: none */
    char why[160];
};

/* Read what p has sent. Returns 1 when p became a peer, 0 while it is still
   talking, -1 to drop it. */
static int pend_read(const struct hs *hs, struct pend *p, struct auth_note *note)
{
    struct pride_tp *tp = hs->tp;
    ssize_t n = recv(p->fd, (char *)&p->in + p->got, sizeof p->in - p->got, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        if (p->proof_due) {
            note->rank = p->rank;
            snprintf(note->why, sizeof note->why,
                     "it hung up instead of proving it holds the job key");
        }
        return -1;
    }
    p->got += (size_t)n;
    char why[200];
    struct auth_expect e = {p->proof_due ? AUTH_HELLO_PROOF : AUTH_HELLO_CONNECT, tp->rank,
                            p->proof_due ? p->rank : -1, tp->nranks, hs->jh};
    int c = auth_hello_check(&p->in, p->got, &e, why, sizeof why);
    if (c <= 0)
        return c < 0 ? -1 : 0;
    if (!p->proof_due) {
        p->rank = p->in.rank;
        if (tp->peers[p->rank].fd >= 0)
            return -1;
        memcpy(p->nonce_c, p->in.nonce, AUTH_NONCE_LEN);
        struct auth_hello ch;
        auth_hello_fill(&ch, AUTH_HELLO_CHALLENGE, tp->rank, tp->nranks, hs->jh);
        if (auth_random(p->nonce_a, AUTH_NONCE_LEN) != PRIDE_OK)
            return -1;
        memcpy(ch.nonce, p->nonce_a, AUTH_NONCE_LEN);
        auth_hello_mac(hs->key, 'A', p->nonce_c, p->nonce_a, p->rank, tp->rank, tp->nranks,
                       hs->job, ch.mac);
        if (io_full(p->fd, &ch, sizeof ch, p->deadline, 1) != PRIDE_OK)
            return -1;
        p->proof_due = 1;
        p->got = 0;
        return 0;
    }
    uint8_t mac[AUTH_DIGEST_LEN];
    auth_hello_mac(hs->key, 'C', p->nonce_c, p->nonce_a, p->rank, tp->rank, tp->nranks, hs->job,
                   mac);
    if (!auth_equal(mac, p->in.mac, sizeof mac)) {
        note->rank = p->rank;
        snprintf(note->why, sizeof note->why,
                 "its proof did not match this rank's job key (different PRIDE_AUTH_KEY?)");
        return -1;
    }
    if (tp->peers[p->rank].fd >= 0)
        return -1;
    tune_socket(p->fd);
    tp->peers[p->rank].fd = p->fd;
    return 1;
}

static void pend_drop(struct pend *pend, int *npend, int i, int close_fd)
{
    if (close_fd)
        close(pend[i].fd);
    pend[i] = pend[--*npend];
}

/* Accept until every higher rank has connected and proved itself. */
static int accept_all(const struct hs *hs, int lfd, int64_t deadline)
{
    struct pride_tp *tp = hs->tp;
    pride_context_t *ctx = tp->ctx;
    struct pend pend[PEND_MAX];
    struct pollfd pfd[PEND_MAX + 1];
    struct auth_note note = {-1, ""};
    int npend = 0, st = PRIDE_OK;
    int need = tp->nranks - 1 - tp->rank;
    while (need > 0) {
        int64_t now = pride_now_ns(), until = deadline;
        if (now >= deadline) {
            int missing = -1;
            for (int j = tp->nranks - 1; j > tp->rank; j--)
                if (tp->peers[j].fd < 0)
                    missing = j;
            if (note.rank == missing)
                st = pride_error(ctx, PRIDE_ERR_AUTH,
                                 "rank %d did not connect within %d ms: a connection that said "
                                 "it was rank %d failed authentication: %s",
                                 missing, ctx->timeout_ms, missing, note.why);
            else
                st = pride_error(ctx, PRIDE_ERR_TIMEOUT,
                                 "rank %d did not connect within %d ms (%d ranks missing)",
                                 missing, ctx->timeout_ms, need);
            break;
        }
        pfd[0] = (struct pollfd){lfd, POLLIN, 0};
        for (int i = 0; i < npend; i++) {
            pfd[i + 1] = (struct pollfd){pend[i].fd, POLLIN, 0};
            if (pend[i].deadline < until)
                until = pend[i].deadline;
        }
        int ms = until > now ? (int)((until - now) / 1000000 + 1) : 0;
        if (poll(pfd, (nfds_t)npend + 1, ms) < 0 && errno != EINTR) {
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "poll: %s", strerror(errno));
            break;
        }
        now = pride_now_ns();
        for (int i = npend - 1; i >= 0; i--) { /* backwards: dropping moves the last here */
            int r = 0;
            if (pfd[i + 1].revents)
                r = pend_read(hs, &pend[i], &note);
            if (r == 0 && now >= pend[i].deadline)
                r = -1;
            if (r != 0)
                pend_drop(pend, &npend, i, r < 0);
            if (r > 0)
                need--;
        }
        if (!(pfd[0].revents & POLLIN))
            continue;
        for (;;) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                break;
            if (npend == PEND_MAX) { /* push out the oldest */
                int old = 0;
                for (int i = 1; i < npend; i++)
                    if (pend[i].deadline < pend[old].deadline)
                        old = i;
                pend_drop(pend, &npend, old, 1);
            }
            pend[npend++] = (struct pend){.fd = fd, .rank = -1, .deadline = now + PEND_TIME_NS};
        }
    }
    for (int i = 0; i < npend; i++)
        close(pend[i].fd);
    return st;
}

int tcp_connect_all(struct pride_tp *tp)
{
    pride_context_t *ctx = tp->ctx;
    char why[256] = "";
    int st, lfd = -1;
    struct tcp_addr_rec mine, *all = NULL;
    struct hs hs = {.tp = tp, .jh = auth_job_hash(ctx->job), .job = ctx->job};
    memset(&mine, 0, sizeof mine);
    mine.magic = AUTH_HELLO_MAGIC;
    mine.version = AUTH_HELLO_VERSION;
    host_id(mine.host_id, sizeof mine.host_id);

    st = job_key(ctx, hs.key);
    if (st)
        return st;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (ctx->ifname[0]) {
        st = resolve_ifname(ctx->ifname, &ss, &sl, why, sizeof why);
        if (st) {
            pride_error(ctx, st, "%s", why);
            goto out;
        }
        mine.bound = 1;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof ss);
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        sl = sizeof *s4;
        default_addr(&mine);
    }
    lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (lfd < 0) {
        st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "socket: %s", strerror(errno));
        goto out;
    }
    if (bind(lfd, (struct sockaddr *)&ss, sl) != 0 || listen(lfd, 256) != 0) {
        st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "bind/listen on %s: %s",
                         ctx->ifname[0] ? ctx->ifname : "any address", strerror(errno));
        goto out;
    }
    getsockname(lfd, (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        mine.family = 6;
        memcpy(mine.addr, &s6->sin6_addr, 16);
        mine.scope_id = s6->sin6_scope_id;
        mine.port = ntohs(s6->sin6_port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        if (mine.bound) {
            mine.family = 4;
            memcpy(mine.addr, &s4->sin_addr, 4);
        }
        mine.port = ntohs(s4->sin_port);
    }

    all = calloc((size_t)tp->nranks, sizeof *all);
    if (!all) {
        st = PRIDE_ERR_NOMEM;
        goto out;
    }
    st = pride_bootstrap_allgather(ctx, "tcp-addr", &mine, all, sizeof mine);
    if (st)
        goto out;
    for (int j = 0; j < tp->nranks; j++) {
        if (all[j].magic != AUTH_HELLO_MAGIC || all[j].version != AUTH_HELLO_VERSION) {
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT,
                             "rank %d published an address this build cannot read (version %u)",
                             j, (unsigned)all[j].version);
            goto out;
        }
        all[j].host_id[sizeof all[j].host_id - 1] = 0;
    }
    int64_t deadline = pride_deadline_ns(ctx->timeout_ms);
    for (int j = 0; j < tp->rank; j++) {
        st = connect_peer(&hs, j, &mine, &all[j], deadline);
        if (st)
            goto out;
    }
    st = accept_all(&hs, lfd, deadline);
    if (st)
        goto out;
    for (int j = 0; j < tp->nranks; j++)
        if (tp->peers[j].fd >= 0)
            set_nonblock(tp->peers[j].fd);
out:
    explicit_bzero(hs.key, sizeof hs.key);
    free(all);
    if (lfd >= 0)
        close(lfd);
    return st;
}
