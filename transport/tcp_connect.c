/*
 * tcp start-up: choose an address, listen, publish it through the store, and build
 * the full mesh. Rank i connects to every rank below it and accepts every rank above
 * it, so no two ranks wait on each other. Each connection opens with a hello that
 * names the job, the rank and the protocol version; a connection that does not
 * prove it belongs to this job is closed and start-up goes on. The listening socket
 * is closed once the mesh is complete: later connections are refused by the kernel.
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

#include "tcp.h"

#define HELLO_MAGIC 0x48445250u /* "PRDH" */
#define HELLO_CONNECT 1
#define HELLO_ACCEPT 2

/* What each rank publishes. */
struct tcp_addr_rec {
    uint32_t magic;
    uint32_t version;
    char host_id[112]; /* hostname and network namespace */
    uint8_t addr[16];  /* IPv4 in the first 4 bytes, or IPv6 */
    uint32_t scope_id;
    uint16_t port;
    uint8_t family;    /* 4 or 6 */
    uint8_t bound;     /* 1: bound to addr only; 0: listening on every address */
};

struct tcp_hello {
    uint32_t magic;
    uint16_t version;
    uint16_t kind;
    int32_t rank;
    int32_t nranks;
    uint64_t job_hash;
};

static uint64_t job_hash(const char *job)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (const unsigned char *p = (const unsigned char *)job; *p; p++)
        h = (h ^ *p) * UINT64_C(1099511628211);
    return h;
}

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

static int connect_peer(struct pride_tp *tp, int j, const struct tcp_addr_rec *mine,
                        const struct tcp_addr_rec *rec, uint64_t jh, int64_t deadline)
{
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
    struct tcp_hello h = {HELLO_MAGIC, PRIDE_PROTO_VERSION, HELLO_CONNECT, tp->rank, tp->nranks, jh};
    st = io_full(fd, &h, sizeof h, deadline, 1);
    if (st == PRIDE_OK)
        st = io_full(fd, &h, sizeof h, deadline, 0);
    if (st != PRIDE_OK) {
        pride_error(ctx, st, "handshake with rank %d at %s port %u: %s", j, astr, rec->port,
                    st == PRIDE_ERR_TIMEOUT ? "no answer in time" : "connection closed");
        goto fail;
    }
    if (h.magic != HELLO_MAGIC || h.version != PRIDE_PROTO_VERSION || h.kind != HELLO_ACCEPT ||
        h.rank != j || h.nranks != tp->nranks || h.job_hash != jh) {
        st = pride_error(ctx, PRIDE_ERR_AUTH,
                         "rank %d at %s port %u answered the handshake as rank %d of %d, "
                         "version %u, %s job",
                         j, astr, rec->port, (int)h.rank, (int)h.nranks, (unsigned)h.version,
                         h.job_hash == jh ? "same" : "another");
        goto fail;
    }
    tp->peers[j].fd = fd;
    return PRIDE_OK;
fail:
    close(fd);
    return st;
}

/* Accept one connection; returns 1 if it became a peer, 0 if a stranger was dropped. */
static int accept_one(struct pride_tp *tp, int lfd, uint64_t jh, int64_t deadline)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return 0;
    /* A stranger gets a short while to speak, never the whole start-up. */
    int64_t hd = pride_now_ns() + INT64_C(2000000000);
    struct tcp_hello h;
    if (io_full(fd, &h, sizeof h, hd < deadline ? hd : deadline, 0) != PRIDE_OK)
        goto drop;
    if (h.magic != HELLO_MAGIC || h.version != PRIDE_PROTO_VERSION || h.kind != HELLO_CONNECT ||
        h.job_hash != jh || h.nranks != tp->nranks || h.rank <= tp->rank ||
        h.rank >= tp->nranks || tp->peers[h.rank].fd >= 0)
        goto drop;
    int j = h.rank;
    struct tcp_hello r = {HELLO_MAGIC, PRIDE_PROTO_VERSION, HELLO_ACCEPT, tp->rank, tp->nranks, jh};
    if (io_full(fd, &r, sizeof r, deadline, 1) != PRIDE_OK)
        goto drop;
    tune_socket(fd);
    tp->peers[j].fd = fd;
    return 1;
drop:
    close(fd);
    return 0;
}

int tcp_connect_all(struct pride_tp *tp)
{
    pride_context_t *ctx = tp->ctx;
    char why[256] = "";
    int st, lfd = -1;
    struct tcp_addr_rec mine, *all = NULL;
    memset(&mine, 0, sizeof mine);
    mine.magic = HELLO_MAGIC;
    mine.version = PRIDE_PROTO_VERSION;
    host_id(mine.host_id, sizeof mine.host_id);

    struct sockaddr_storage ss;
    socklen_t sl;
    if (ctx->ifname[0]) {
        st = resolve_ifname(ctx->ifname, &ss, &sl, why, sizeof why);
        if (st)
            return pride_error(ctx, st, "%s", why);
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
    if (lfd < 0)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "socket: %s", strerror(errno));
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
        if (all[j].magic != HELLO_MAGIC || all[j].version != PRIDE_PROTO_VERSION) {
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT,
                             "rank %d published an address this build cannot read (version %u)",
                             j, (unsigned)all[j].version);
            goto out;
        }
        all[j].host_id[sizeof all[j].host_id - 1] = 0;
    }
    uint64_t jh = job_hash(ctx->job);
    int64_t deadline = pride_deadline_ns(ctx->timeout_ms);
    for (int j = 0; j < tp->rank; j++) {
        st = connect_peer(tp, j, &mine, &all[j], jh, deadline);
        if (st)
            goto out;
    }
    int need = tp->nranks - 1 - tp->rank;
    while (need > 0) {
        int64_t left = deadline - pride_now_ns();
        if (left <= 0) {
            int missing = -1;
            for (int j = tp->nranks - 1; j > tp->rank; j--)
                if (tp->peers[j].fd < 0)
                    missing = j;
            st = pride_error(ctx, PRIDE_ERR_TIMEOUT,
                             "rank %d did not connect within %d ms (%d ranks missing)", missing,
                             ctx->timeout_ms, need);
            goto out;
        }
        struct pollfd pfd = {lfd, POLLIN, 0};
        if (poll(&pfd, 1, (int)(left / 1000000 + 1)) == 1)
            need -= accept_one(tp, lfd, jh, deadline);
    }
    for (int j = 0; j < tp->nranks; j++)
        if (tp->peers[j].fd >= 0)
            set_nonblock(tp->peers[j].fd);
    st = PRIDE_OK;
out:
    free(all);
    if (lfd >= 0)
        close(lfd);
    return st;
}
