/*
 * verbs start-up: choose the RDMA device and port, find this rank's address on it,
 * listen with librdmacm, publish (address, port) through the bootstrap allgather,
 * and build the full mesh of RC queue pairs. Rank i connects to every rank below it
 * and accepts every rank above it, as tcp does. The handshake rides in the
 * connection manager's private data: the REQ names the job, the rank, the protocol
 * version and the receive buffers posted (the peer's first credits); the REP answers
 * the same. A request that does not prove it belongs to this job is rejected and
 * start-up goes on.
 *
 * Device: PRIDE_IB_DEVICE (default: the first one), port PRIDE_IB_PORT (default 1),
 * which must be ACTIVE. Address: PRIDE_IFNAME (an IPv4 address, or an interface whose
 * first IPv4 address is taken) when set; else the IPv4 address in the port's GID
 * table (RoCE keeps ::ffff:a.b.c.d entries there): the entry PRIDE_IB_GID_INDEX, or
 * the first such entry. With rdmacm the GID a connection uses follows from that
 * address; an InfiniBand port has no IPv4 GIDs and needs PRIDE_IFNAME (its IPoIB
 * address).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verbs.h"

#define VERBS_HELLO_MAGIC 0x48565250u /* "PRVH" */
#define VERBS_HELLO_REQ 1
#define VERBS_HELLO_REP 2
#define VERBS_CM_TIMEOUT_MS 2000

struct verbs_addr_rec { /* what each rank publishes */
    uint32_t magic;
    uint32_t version;
    uint32_t ip; /* network order */
    uint16_t port; /* network order */
    uint16_t pad;
    char dev[64];
};

struct verbs_hello { /* connection private data: at most 56 bytes */
    uint32_t magic;
    uint16_t version;
    uint16_t kind;
    int32_t rank;
    int32_t nranks;
    uint64_t job_hash;
    uint32_t credits;
    uint32_t pad;
};

_Static_assert(sizeof(struct verbs_hello) <= 56, "hello fits a connection request");

static uint64_t job_hash(const char *job)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (const unsigned char *p = (const unsigned char *)job; *p; p++)
        h = (h ^ *p) * UINT64_C(1099511628211);
    return h;
}

/* An integer environment variable in [lo, hi]; def when unset. -1 when garbage. */
static int env_num(const char *name, int lo, int hi, int def, int *out)
{
    const char *s = getenv(name);
    if (!s || !*s) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static const char *port_state_name(enum ibv_port_state s)
{
    switch (s) {
    case IBV_PORT_DOWN:
        return "DOWN";
    case IBV_PORT_INIT:
        return "INIT";
    case IBV_PORT_ARMED:
        return "ARMED";
    case IBV_PORT_ACTIVE:
        return "ACTIVE";
    case IBV_PORT_ACTIVE_DEFER:
        return "ACTIVE_DEFER";
    default:
        return "NOP";
    }
}

/* PRIDE_IFNAME as an IPv4 address: a literal, or an interface's first one. */
static int ifname_ipv4(pride_context_t *ctx, const char *name, uint32_t *ip)
{
    struct in_addr a;
    if (inet_pton(AF_INET, name, &a) == 1) {
        *ip = a.s_addr;
        return PRIDE_OK;
    }
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "getifaddrs: %s", strerror(errno));
    int found = 0;
    for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !strcmp(i->ifa_name, name)) {
            *ip = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
            found = 1;
        }
    }
    freeifaddrs(ifs);
    if (!found)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT,
                           "PRIDE_IFNAME=%s is neither an IPv4 address nor an interface with "
                           "one (the verbs transport connects over IPv4 with librdmacm)", name);
    return PRIDE_OK;
}

/* The IPv4 address in GID index of the port; 0 if that entry holds none. */
static int gid_ipv4(const struct verbs_api *api, struct ibv_context *c, int port, int index,
                    uint32_t *ip)
{
    union ibv_gid g;
    if (api->query_gid(c, (uint8_t)port, index, &g) != 0)
        return 0;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(g.raw, mapped, sizeof mapped) != 0)
        return 0;
    memcpy(ip, g.raw + 12, 4);
    return 1;
}

/* Device and port; this rank's IPv4 address (network order) on it. */
static int verbs_pick_device(struct pride_tp *tp, uint32_t *ip)
{
    pride_context_t *ctx = tp->ctx;
    const struct verbs_api *api = tp->api;
    int st = PRIDE_OK, n = 0, gid_index;
    struct ibv_context *dev = NULL;
    if (env_num("PRIDE_IB_PORT", 1, 255, 1, &tp->port) != 0 ||
        env_num("PRIDE_IB_GID_INDEX", -1, 65535, -1, &gid_index) != 0)
        return pride_error(ctx, PRIDE_ERR_INVALID,
                           "PRIDE_IB_PORT must be a port number (1-255) and PRIDE_IB_GID_INDEX a "
                           "GID table index");
    errno = 0;
    struct ibv_device **list = api->get_device_list(&n);
    if (!list || n == 0) {
        int e = errno;
        st = pride_error(ctx, PRIDE_ERR_TRANSPORT,
                         "no RDMA device was found (ibv_get_device_list: %s): this host has no "
                         "RDMA NIC, or its kernel driver (or rdma_rxe for RoCE on a plain NIC) "
                         "is not loaded; use the tcp transport",
                         list ? "an empty list" : e == ENOSYS ? "no RDMA support in the kernel"
                                                             : strerror(e));
        goto out;
    }
    const char *want = getenv("PRIDE_IB_DEVICE");
    struct ibv_device *d = NULL;
    char names[256] = "";
    for (int i = 0; i < n; i++) {
        const char *nm = api->get_device_name(list[i]);
        if (!d && (!want || !*want || !strcmp(nm, want)))
            d = list[i];
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", nm);
    }
    if (!d) {
        st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "PRIDE_IB_DEVICE=%s: no RDMA device of that "
                         "name (this host has: %s)", want, names);
        goto out;
    }
    snprintf(tp->devname, sizeof tp->devname, "%s", api->get_device_name(d));
    errno = 0;
    dev = api->open_device(d);
    if (!dev) {
        st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "ibv_open_device(%s): %s", tp->devname,
                         strerror(errno));
        goto out;
    }
    struct ibv_port_attr pa;
    int e = api->query_port(dev, (uint8_t)tp->port, &pa);
    if (e) {
        st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "%s has no port %d (ibv_query_port: %s; set "
                         "PRIDE_IB_PORT)", tp->devname, tp->port, strerror(e));
        goto out;
    }
    if (pa.state != IBV_PORT_ACTIVE) {
        st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "port %d of %s is %s, not ACTIVE (is its "
                         "link up?)", tp->port, tp->devname, port_state_name(pa.state));
        goto out;
    }
    tp->max_msg = pa.max_msg_sz && pa.max_msg_sz < (1u << 30) ? pa.max_msg_sz : 1u << 30;
    if (ctx->ifname[0]) {
        st = ifname_ipv4(ctx, ctx->ifname, ip);
    } else if (gid_index >= 0) {
        if (!gid_ipv4(api, dev, tp->port, gid_index, ip))
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT,
                             "GID %d of %s port %d holds no IPv4 address (RoCE keeps them as "
                             "::ffff:a.b.c.d): choose another PRIDE_IB_GID_INDEX or set "
                             "PRIDE_IFNAME", gid_index, tp->devname, tp->port);
    } else {
        int found = 0;
        for (int i = 0; i < pa.gid_tbl_len && !found; i++)
            found = gid_ipv4(api, dev, tp->port, i, ip);
        if (!found)
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT,
                             "port %d of %s has no IPv4 address in its GID table (%s link "
                             "layer): set PRIDE_IFNAME to the address of its IP interface",
                             tp->port, tp->devname,
                             pa.link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet"
                                                                       : "InfiniBand");
    }
out:
    if (dev)
        api->close_device(dev);
    if (list)
        api->free_device_list(list);
    return st;
}

static void ip_str(uint32_t ip, char *out, size_t len)
{
    struct in_addr a = {ip};
    if (!inet_ntop(AF_INET, &a, out, (socklen_t)len))
        snprintf(out, len, "?");
}

/* Listen on ip with an ephemeral port, on the chosen device and port. */
static int verbs_listen(struct pride_tp *tp, uint32_t ip, uint16_t *port)
{
    pride_context_t *ctx = tp->ctx;
    const struct verbs_api *api = tp->api;
    char astr[INET_ADDRSTRLEN];
    ip_str(ip, astr, sizeof astr);
    errno = 0;
    tp->ev = api->create_event_channel();
    if (!tp->ev)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "rdma_create_event_channel: %s (is the "
                           "rdma_ucm kernel module loaded?)", strerror(errno));
    fcntl(tp->ev->fd, F_SETFL, fcntl(tp->ev->fd, F_GETFL) | O_NONBLOCK);
    if (api->create_id(tp->ev, &tp->listen_id, NULL, RDMA_PS_TCP) != 0)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "rdma_create_id: %s", strerror(errno));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr = {ip}};
    if (api->bind_addr(tp->listen_id, (struct sockaddr *)&sin) != 0)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "rdma_bind_addr(%s): %s", astr,
                           strerror(errno));
    struct ibv_context *verbs = tp->listen_id->verbs;
    if (!verbs)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "address %s is not on an RDMA device (set "
                           "PRIDE_IFNAME to the RDMA interface's address)", astr);
    const char *dn = api->get_device_name(verbs->device);
    if (strcmp(dn, tp->devname) != 0 || tp->listen_id->port_num != tp->port)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "address %s belongs to %s port %d, not to "
                           "%s port %d (PRIDE_IB_DEVICE / PRIDE_IB_PORT and PRIDE_IFNAME disagree)",
                           astr, dn, tp->listen_id->port_num, tp->devname, tp->port);
    if (api->listen(tp->listen_id, tp->nranks + 16) != 0)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "rdma_listen on %s: %s", astr,
                           strerror(errno));
    *port = tp->listen_id->route.addr.src_sin.sin_port;
    return verbs_resources(tp, verbs);
}

static void hello_fill(struct pride_tp *tp, struct verbs_hello *h, int kind)
{
    *h = (struct verbs_hello){.magic = VERBS_HELLO_MAGIC,
                              .version = PRIDE_PROTO_VERSION,
                              .kind = (uint16_t)kind,
                              .rank = tp->rank,
                              .nranks = tp->nranks,
                              .job_hash = job_hash(tp->ctx->job),
                              .credits = VERBS_DEPTH};
}

/* A peer's hello: 1 if it is rank `from` (or any rank above this one for from < 0) of
   this job, with this version. */
static int hello_ok(struct pride_tp *tp, const struct rdma_cm_event *e, int kind, int from)
{
    struct verbs_hello h;
    if (!e->param.conn.private_data || e->param.conn.private_data_len < sizeof h)
        return 0;
    memcpy(&h, e->param.conn.private_data, sizeof h);
    if (h.magic != VERBS_HELLO_MAGIC || h.version != PRIDE_PROTO_VERSION || h.kind != kind ||
        h.nranks != tp->nranks || h.job_hash != job_hash(tp->ctx->job) || h.credits < 2)
        return 0;
    if (from >= 0 ? h.rank != from
                  : (h.rank <= tp->rank || h.rank >= tp->nranks || tp->peers[h.rank].id))
        return 0;
    struct verbs_peer *p = &tp->peers[h.rank];
    p->credits = h.credits > VERBS_DEPTH ? VERBS_DEPTH : (int)h.credits;
    return 1;
}

/* A connection request: accept it if it is a rank above this one, else reject it
   (*drop: the id to destroy once the event is acknowledged). */
static int on_request(struct pride_tp *tp, struct rdma_cm_event *e, struct rdma_cm_id **drop)
{
    const struct verbs_api *api = tp->api;
    struct rdma_cm_id *id = e->id;
    if (!hello_ok(tp, e, VERBS_HELLO_REQ, -1)) {
        api->reject(id, NULL, 0);
        *drop = id;
        return PRIDE_OK;
    }
    struct verbs_hello h;
    memcpy(&h, e->param.conn.private_data, sizeof h);
    struct verbs_peer *p = &tp->peers[h.rank];
    int st = verbs_peer_setup(tp, p, id);
    if (st) {
        api->reject(id, NULL, 0);
        if (!p->id)
            *drop = id;
        return st;
    }
    struct verbs_hello r;
    hello_fill(tp, &r, VERBS_HELLO_REP);
    struct rdma_conn_param cp = {.private_data = &r, .private_data_len = sizeof r,
                                 .responder_resources = 1, .initiator_depth = 1,
                                 .rnr_retry_count = 3};
    if (api->accept(id, &cp) != 0)
        return pride_error(tp->ctx, PRIDE_ERR_TRANSPORT, "rdma_accept of rank %d: %s", p->rank,
                           strerror(errno));
    return PRIDE_OK;
}

static int on_cm_event(struct pride_tp *tp, struct rdma_cm_event *e, int *established,
                       struct rdma_cm_id **drop)
{
    pride_context_t *ctx = tp->ctx;
    const struct verbs_api *api = tp->api;
    struct verbs_peer *p = NULL;
    for (int j = 0; j < tp->nranks && !p; j++)
        if (tp->peers[j].id == e->id)
            p = &tp->peers[j];
    if (e->event == RDMA_CM_EVENT_CONNECT_REQUEST)
        return on_request(tp, e, drop);
    if (!p)
        return PRIDE_OK; /* a stranger's id, already rejected */
    switch (e->event) {
    case RDMA_CM_EVENT_ADDR_RESOLVED:
        if (api->resolve_route(e->id, VERBS_CM_TIMEOUT_MS) != 0)
            return pride_error(ctx, PRIDE_ERR_TRANSPORT, "rdma_resolve_route to rank %d: %s",
                               p->rank, strerror(errno));
        return PRIDE_OK;
    case RDMA_CM_EVENT_ROUTE_RESOLVED: {
        if (e->id->verbs != tp->listen_id->verbs)
            return pride_error(ctx, PRIDE_ERR_TRANSPORT, "rank %d is reached through another "
                               "RDMA device than %s", p->rank, tp->devname);
        int st = verbs_peer_setup(tp, p, e->id);
        if (st)
            return st;
        struct verbs_hello h;
        hello_fill(tp, &h, VERBS_HELLO_REQ);
        struct rdma_conn_param cp = {.private_data = &h, .private_data_len = sizeof h,
                                     .responder_resources = 1, .initiator_depth = 1,
                                     .retry_count = 7, .rnr_retry_count = 3};
        if (api->connect(e->id, &cp) != 0)
            return pride_error(ctx, PRIDE_ERR_TRANSPORT, "rdma_connect to rank %d: %s", p->rank,
                               strerror(errno));
        return PRIDE_OK;
    }
    case RDMA_CM_EVENT_ESTABLISHED:
        if (p->rank < tp->rank && !hello_ok(tp, e, VERBS_HELLO_REP, p->rank))
            return pride_error(ctx, PRIDE_ERR_AUTH, "rank %d answered the connection as another "
                               "rank, job or version", p->rank);
        p->connected = 1;
        (*established)++;
        return PRIDE_OK;
    case RDMA_CM_EVENT_DISCONNECTED:
        if (!p->connected)
            break;
        /* A rank that finished start-up may already have run, failed and left: what
           it sent (an ERROR frame, say) waits in the CQ, for the first wait to read
           before it notices the departure, as it would after start-up. */
        p->left_early = 1;
        return PRIDE_OK;
    case RDMA_CM_EVENT_REJECTED:
        return pride_error(ctx, PRIDE_ERR_PEER, "rank %d rejected the connection (%s, status "
                           "%d: not listening, or not of this job)", p->rank,
                           api->event_str(e->event), e->status);
    default:
        break;
    }
    return pride_error(ctx, PRIDE_ERR_PEER, "connecting rank %d failed: %s (status %d)", p->rank,
                       api->event_str(e->event), e->status);
}

int verbs_connect_all(struct pride_tp *tp)
{
    pride_context_t *ctx = tp->ctx;
    const struct verbs_api *api;
    char why[300] = "";
    tp->api = api = verbs_api_select(why, sizeof why);
    if (!api)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "%s", why);
    uint32_t ip = 0;
    int st = verbs_pick_device(tp, &ip);
    if (st || tp->nranks == 1)
        return st;
    struct verbs_addr_rec mine = {.magic = VERBS_HELLO_MAGIC, .version = PRIDE_PROTO_VERSION,
                                  .ip = ip};
    snprintf(mine.dev, sizeof mine.dev, "%s", tp->devname);
    st = verbs_listen(tp, ip, &mine.port);
    if (st)
        return st;
    struct verbs_addr_rec *all = calloc((size_t)tp->nranks, sizeof *all);
    if (!all)
        return pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for %d addresses", tp->nranks);
    st = pride_bootstrap_allgather(ctx, "verbs-addr", &mine, all, sizeof mine);
    if (st)
        goto out;
    for (int j = 0; j < tp->nranks; j++) {
        if (all[j].magic != VERBS_HELLO_MAGIC || all[j].version != PRIDE_PROTO_VERSION) {
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "rank %d published an address this build "
                             "cannot read (version %u)", j, (unsigned)all[j].version);
            goto out;
        }
    }
    for (int j = 0; j < tp->rank; j++) {
        struct verbs_peer *p = &tp->peers[j];
        if (api->create_id(tp->ev, &p->id, NULL, RDMA_PS_TCP) != 0) {
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "rdma_create_id: %s", strerror(errno));
            goto out;
        }
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr = {ip}};
        struct sockaddr_in dst = {.sin_family = AF_INET, .sin_addr = {all[j].ip},
                                  .sin_port = all[j].port};
        if (api->resolve_addr(p->id, (struct sockaddr *)&src, (struct sockaddr *)&dst,
                              VERBS_CM_TIMEOUT_MS) != 0) {
            char astr[INET_ADDRSTRLEN];
            ip_str(all[j].ip, astr, sizeof astr);
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "rdma_resolve_addr of rank %d at %s: %s",
                             j, astr, strerror(errno));
            goto out;
        }
    }
    int established = 0;
    int64_t deadline = pride_deadline_ns(ctx->timeout_ms);
    while (established < tp->nranks - 1) {
        int64_t left = deadline - pride_now_ns();
        if (left <= 0) {
            int missing = -1;
            for (int j = tp->nranks - 1; j >= 0; j--)
                if (j != tp->rank && !tp->peers[j].connected)
                    missing = j;
            char astr[INET_ADDRSTRLEN];
            ip_str(all[missing].ip, astr, sizeof astr);
            st = pride_error(ctx, PRIDE_ERR_TIMEOUT, "rank %d (%s port %u on %s) did not connect "
                             "within %d ms (%d of %d connections made)", missing, astr,
                             ntohs(all[missing].port), all[missing].dev, ctx->timeout_ms,
                             established, tp->nranks - 1);
            goto out;
        }
        struct pollfd pf = {tp->ev->fd, POLLIN, 0};
        poll(&pf, 1, (int)(left / 1000000 + 1));
        struct rdma_cm_event *e;
        while (st == PRIDE_OK && api->get_cm_event(tp->ev, &e) == 0) {
            struct rdma_cm_id *drop = NULL;
            st = on_cm_event(tp, e, &established, &drop);
            api->ack_cm_event(e); /* before destroy_id, which waits for its events' acks */
            if (drop)
                api->destroy_id(drop);
        }
        if (st)
            goto out;
    }
    /* The mesh is complete: later requests find nobody listening. */
    api->destroy_id(tp->listen_id);
    tp->listen_id = NULL;
out:
    free(all);
    return st;
}
