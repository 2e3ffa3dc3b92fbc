/*
 * The software model's connection manager: what librdmacm does for RC over an IB
 * connection manager, reduced to the messages that matter. The active side resolves
 * an address (only the model's 127.0.0.1 resolves; anything else gets ADDR_ERROR) and
 * a route, then rdma_connect opens a Unix socket to the listener's name in the fabric
 * directory and sends a REQ with its QP number and private data. The passive side's
 * NIC turns the REQ into CONNECT_REQUEST on a new id; rdma_accept moves its QP to
 * RTR and RTS and answers REP; the active NIC moves its QP the same way, answers RTU
 * and reports ESTABLISHED, and the RTU makes the passive side ESTABLISHED. A socket
 * that cannot connect is REJECTED (status 8, invalid service ID, what an IB CM says
 * when nobody listens on the port); rdma_reject sends REJ (status 28, consumer
 * defined). rdma_disconnect moves the QP to ERR and sends DREQ; both sides report
 * DISCONNECTED. A connection whose socket closes (the peer process died or destroyed
 * its id) is DISCONNECTED too, its QP in error with the request on the wire reported
 * as IBV_WC_RETRY_EXC_ERR, as the retry timer would report it on a real fabric.
 *
 * Private data arrives zero-padded to the size an IB CM message carries (56 bytes in
 * a REQ, 196 in a REP, 148 in a REJ), as it does over a real IB CM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "verbs_model.h"

#define VM_REJ_NO_LISTENER 8 /* IB_CM_REJ_INVALID_SERVICE_ID */
#define VM_REJ_CONSUMER 28   /* IB_CM_REJ_CONSUMER_DEFINED */

/* ---- event channels and events ---- */

struct rdma_event_channel *vm_rdma_create_event_channel(void)
{
    struct vm_evch *ch = calloc(1, sizeof *ch);
    int p[2] = {-1, -1};
    if (!ch || pipe2(p, O_CLOEXEC) != 0 || vm_acquire() != 0) {
        int e = errno ? errno : ENOMEM;
        if (p[0] >= 0) {
            close(p[0]);
            close(p[1]);
        }
        free(ch);
        errno = e;
        return NULL;
    }
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    ch->ch.fd = p[0];
    ch->wfd = p[1];
    return &ch->ch;
}

void vm_rdma_destroy_event_channel(struct rdma_event_channel *c)
{
    struct vm_evch *ch = (struct vm_evch *)c;
    pthread_mutex_lock(&vm.mu);
    for (struct vm_cmev *e = ch->head, *n; e; e = n) {
        n = e->next;
        free(e);
    }
    pthread_mutex_unlock(&vm.mu);
    close(ch->ch.fd);
    close(ch->wfd);
    free(ch);
    vm_release();
}

void vm_cm_event(struct vm_cmid *id, struct vm_cmid *listen, enum rdma_cm_event_type type,
                 int status, const void *pdata, size_t pdlen, size_t padded,
                 const struct vm_pkt *req)
{
    struct vm_evch *ch = (struct vm_evch *)id->id.channel;
    struct vm_cmev *e = calloc(1, sizeof *e);
    if (!e || !ch) {
        free(e);
        return;
    }
    e->ev.id = &id->id;
    e->ev.listen_id = listen ? &listen->id : NULL;
    e->ev.event = type;
    e->ev.status = status;
    if (padded) {
        if (pdlen > padded)
            pdlen = padded;
        if (pdlen)
            memcpy(e->pdata, pdata, pdlen);
        e->ev.param.conn.private_data = e->pdata;
        e->ev.param.conn.private_data_len = (uint8_t)padded;
    }
    if (req) {
        e->ev.param.conn.responder_resources = req->resp_res;
        e->ev.param.conn.initiator_depth = req->init_depth;
        e->ev.param.conn.retry_count = req->retry_cnt;
        e->ev.param.conn.rnr_retry_count = req->rnr_retry;
        e->ev.param.conn.qp_num = req->qpn;
    }
    if (ch->tail)
        ch->tail->next = e;
    else
        ch->head = e;
    ch->tail = e;
    char one = 1;
    ssize_t r = write(ch->wfd, &one, 1);
    (void)r;
}

/* Events of an id that goes away are dropped, as the kernel drops them. */
static void vm_cm_purge(struct vm_evch *ch, struct rdma_cm_id *id)
{
    struct vm_cmev **pp = &ch->head, *prev = NULL;
    while (*pp) {
        struct vm_cmev *e = *pp;
        if (e->ev.id == id || e->ev.listen_id == id) {
            *pp = e->next;
            free(e);
            continue;
        }
        prev = e;
        pp = &e->next;
    }
    ch->tail = prev;
}

int vm_rdma_get_cm_event(struct rdma_event_channel *c, struct rdma_cm_event **out)
{
    struct vm_evch *ch = (struct vm_evch *)c;
    for (;;) {
        char b;
        ssize_t n = read(ch->ch.fd, &b, 1);
        if (n != 1) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        pthread_mutex_lock(&vm.mu);
        struct vm_cmev *e = ch->head;
        if (e) {
            ch->head = e->next;
            if (!ch->head)
                ch->tail = NULL;
        }
        pthread_mutex_unlock(&vm.mu);
        if (e) {
            *out = &e->ev;
            return 0;
        }
        /* a purged event's byte: read on */
    }
}

int vm_rdma_ack_cm_event(struct rdma_cm_event *ev)
{
    free((struct vm_cmev *)ev);
    return 0;
}

/* ---- ids ---- */

static int vm_fail(int e)
{
    errno = e;
    return -1;
}

int vm_rdma_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **out, void *context,
                      enum rdma_port_space ps)
{
    if (!ch || !out || ps != RDMA_PS_TCP)
        return vm_fail(EINVAL);
    struct vm_cmid *id = calloc(1, sizeof *id);
    if (!id)
        return vm_fail(ENOMEM);
    id->id.channel = ch;
    id->id.context = context;
    id->id.ps = ps;
    id->id.qp_type = IBV_QPT_RC;
    id->lfd = -1;
    pthread_mutex_lock(&vm.mu);
    id->next = vm.ids;
    vm.ids = id;
    pthread_mutex_unlock(&vm.mu);
    *out = &id->id;
    return 0;
}

int vm_rdma_destroy_id(struct rdma_cm_id *rid)
{
    struct vm_cmid *id = (struct vm_cmid *)rid;
    pthread_mutex_lock(&vm.mu);
    if (id->id.qp) {
        pthread_mutex_unlock(&vm.mu);
        return vm_fail(EBUSY);
    }
    vm_cm_purge((struct vm_evch *)id->id.channel, rid);
    if (id->lfd >= 0) {
        shutdown(id->lfd, SHUT_RDWR);
        close(id->lfd);
        unlink(id->path);
        vm.gen++;
        vm_kick();
    }
    for (struct vm_conn *c = vm.conns; c; c = c->next)
        if (c->listen == id)
            c->listen = NULL;
    if (id->conn)
        vm_conn_free(id->conn);
    struct vm_cmid **pp = &vm.ids;
    while (*pp != id)
        pp = &(*pp)->next;
    *pp = id->next;
    pthread_mutex_unlock(&vm.mu);
    free(id);
    return 0;
}

/* The socket name of ip_host:port in the fabric directory; ENAMETOOLONG if it does
   not fit (verbs_model_api keeps the directory short enough). */
static int vm_path(char *out, size_t len, uint32_t ip_host, unsigned port)
{
    int n = snprintf(out, len, "%s/%u.%u.%u.%u:%u", vm.dir, ip_host >> 24, (ip_host >> 16) & 255,
                     (ip_host >> 8) & 255, ip_host & 255, port);
    return n < 0 || (size_t)n >= len ? ENAMETOOLONG : 0;
}

/* Bind a listening socket to the name of port; a name left by a dead process (nobody
   accepts on it) is taken over. */
static int vm_bind_port(int fd, unsigned port, char *path, size_t plen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (vm_path(sa.sun_path, sizeof sa.sun_path, VM_IPV4, port))
        return ENAMETOOLONG;
    for (int tries = 0; tries < 2; tries++) {
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            memcpy(path, sa.sun_path, plen < sizeof sa.sun_path ? plen : sizeof sa.sun_path);
            return 0;
        }
        if (errno != EADDRINUSE)
            return errno;
        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int stale = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) != 0 &&
                    errno == ECONNREFUSED;
        if (probe >= 0)
            close(probe);
        if (!stale)
            return EADDRINUSE;
        unlink(sa.sun_path);
    }
    return EADDRINUSE;
}

int vm_rdma_bind_addr(struct rdma_cm_id *rid, struct sockaddr *addr)
{
    struct vm_cmid *id = (struct vm_cmid *)rid;
    if (!addr)
        return vm_fail(EINVAL);
    if (addr->sa_family != AF_INET)
        return vm_fail(EAFNOSUPPORT);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
    uint32_t ip = ntohl(sin->sin_addr.s_addr);
    if (ip != VM_IPV4 && ip != INADDR_ANY)
        return vm_fail(EADDRNOTAVAIL);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    pthread_mutex_lock(&vm.mu);
    int st = EINVAL;
    unsigned port = ntohs(sin->sin_port);
    if (id->state != VM_CM_IDLE)
        goto fail;
    if (port) {
        st = vm_bind_port(fd, port, id->path, sizeof id->path);
    } else {
        st = EADDRINUSE;
        for (int i = 0; i < 1000 && st == EADDRINUSE; i++) {
            port = vm.next_port++;
            if (vm.next_port > 60999)
                vm.next_port = 32768;
            st = vm_bind_port(fd, port, id->path, sizeof id->path);
        }
    }
    if (st)
        goto fail;
    id->lfd = fd;
    id->state = VM_CM_BOUND;
    id->id.route.addr.src_sin.sin_family = AF_INET;
    id->id.route.addr.src_sin.sin_addr.s_addr = sin->sin_addr.s_addr;
    id->id.route.addr.src_sin.sin_port = htons((uint16_t)port);
    if (ip != INADDR_ANY) {
        id->id.verbs = vm_cm_context();
        id->id.port_num = 1;
    }
    pthread_mutex_unlock(&vm.mu);
    return 0;
fail:
    pthread_mutex_unlock(&vm.mu);
    close(fd);
    return vm_fail(st);
}

int vm_rdma_listen(struct rdma_cm_id *rid, int backlog)
{
    struct vm_cmid *id = (struct vm_cmid *)rid;
    pthread_mutex_lock(&vm.mu);
    int st = 0;
    if (id->state != VM_CM_BOUND)
        st = EINVAL;
    else if (listen(id->lfd, backlog > 0 ? backlog : SOMAXCONN) != 0)
        st = errno;
    else
        id->state = VM_CM_LISTEN;
    vm_kick();
    pthread_mutex_unlock(&vm.mu);
    return st ? vm_fail(st) : 0;
}

int vm_rdma_resolve_addr(struct rdma_cm_id *rid, struct sockaddr *src, struct sockaddr *dst,
                         int timeout_ms)
{
    struct vm_cmid *id = (struct vm_cmid *)rid;
    if (!dst || timeout_ms <= 0)
        return vm_fail(EINVAL);
    if (dst->sa_family != AF_INET || (src && src->sa_family != AF_INET))
        return vm_fail(EAFNOSUPPORT);
    if (src) {
        uint32_t s = ntohl(((struct sockaddr_in *)src)->sin_addr.s_addr);
        if (s != VM_IPV4 && s != INADDR_ANY)
            return vm_fail(EADDRNOTAVAIL);
    }
    pthread_mutex_lock(&vm.mu);
    if (id->state != VM_CM_IDLE) {
        pthread_mutex_unlock(&vm.mu);
        return vm_fail(EINVAL);
    }
    id->id.route.addr.dst_sin = *(struct sockaddr_in *)dst;
    if (ntohl(id->id.route.addr.dst_sin.sin_addr.s_addr) != VM_IPV4) {
        vm_cm_event(id, NULL, RDMA_CM_EVENT_ADDR_ERROR, -EHOSTUNREACH, NULL, 0, 0, NULL);
    } else {
        id->id.route.addr.src_sin.sin_family = AF_INET;
        id->id.route.addr.src_sin.sin_addr.s_addr = htonl(VM_IPV4);
        id->id.route.addr.src_sin.sin_port = htons((uint16_t)vm.next_port++);
        id->id.verbs = vm_cm_context();
        id->id.port_num = 1;
        id->state = VM_CM_ADDR;
        vm_cm_event(id, NULL, RDMA_CM_EVENT_ADDR_RESOLVED, 0, NULL, 0, 0, NULL);
    }
    pthread_mutex_unlock(&vm.mu);
    return 0;
}

int vm_rdma_resolve_route(struct rdma_cm_id *rid, int timeout_ms)
{
    struct vm_cmid *id = (struct vm_cmid *)rid;
    pthread_mutex_lock(&vm.mu);
    int ok = id->state == VM_CM_ADDR && timeout_ms > 0;
    if (ok) {
        id->state = VM_CM_ROUTE;
        vm_cm_event(id, NULL, RDMA_CM_EVENT_ROUTE_RESOLVED, 0, NULL, 0, 0, NULL);
    }
    pthread_mutex_unlock(&vm.mu);
    return ok ? 0 : vm_fail(EINVAL);
}

/* ---- queue pairs on ids: created in INIT, moved to RTR and RTS by the handshake ---- */

int vm_rdma_create_qp(struct rdma_cm_id *rid, struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
    struct vm_cmid *id = (struct vm_cmid *)rid;
    if (!pd || !attr)
        return vm_fail(EINVAL);
    pthread_mutex_lock(&vm.mu);
    int st = EINVAL;
    if (!id->id.verbs || pd->context != id->id.verbs || id->id.qp)
        goto out;
    struct vm_qp *q = vm_qp_create(pd, attr);
    if (!q) {
        st = errno;
        goto out;
    }
    struct ibv_qp_attr a = {.qp_state = IBV_QPS_INIT,
                            .port_num = 1,
                            .qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ};
    st = vm_qp_modify(q, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
    if (st) {
        vm_qp_destroy(q);
        goto out;
    }
    attr->cap = q->cap;
    q->cmid = id;
    id->id.qp = &q->qp;
out:
    pthread_mutex_unlock(&vm.mu);
    return st ? vm_fail(st) : 0;
}

void vm_rdma_destroy_qp(struct rdma_cm_id *rid)
{
    pthread_mutex_lock(&vm.mu);
    if (rid->qp)
        vm_qp_destroy((struct vm_qp *)rid->qp);
    pthread_mutex_unlock(&vm.mu);
}

/* INIT -> RTR -> RTS towards remote_qpn, as librdmacm does during the handshake. */
static int vm_qp_connect(struct vm_cmid *id, uint8_t retry_cnt, uint8_t rnr_retry)
{
    struct vm_qp *q = (struct vm_qp *)id->id.qp;
    if (!q)
        return EINVAL;
    struct ibv_qp_attr a = {.qp_state = IBV_QPS_RTR,
                            .path_mtu = IBV_MTU_1024,
                            .dest_qp_num = id->remote_qpn,
                            .max_dest_rd_atomic = 1,
                            .min_rnr_timer = 12,
                            .ah_attr = {.port_num = 1}};
    int st = vm_qp_modify(q, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                                     IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
                                     IBV_QP_MIN_RNR_TIMER);
    if (st)
        return st;
    a = (struct ibv_qp_attr){.qp_state = IBV_QPS_RTS,
                             .timeout = 14,
                             .retry_cnt = retry_cnt > 7 ? 7 : retry_cnt,
                             .rnr_retry = rnr_retry > 7 ? 7 : rnr_retry,
                             .max_rd_atomic = 1};
    return vm_qp_modify(q, &a, IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                                   IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC);
}

int vm_rdma_connect(struct rdma_cm_id *rid, struct rdma_conn_param *p)
{
    struct vm_cmid *id = (struct vm_cmid *)rid;
    if (!p || p->private_data_len > VM_REQ_PDATA || (p->private_data_len && !p->private_data))
        return vm_fail(EINVAL);
    pthread_mutex_lock(&vm.mu);
    if (id->state != VM_CM_ROUTE || !id->id.qp) {
        pthread_mutex_unlock(&vm.mu);
        return vm_fail(EINVAL);
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = -1;
    int e = vm_path(sa.sun_path, sizeof sa.sun_path,
                    ntohl(id->id.route.addr.dst_sin.sin_addr.s_addr),
                    ntohs(id->id.route.addr.dst_sin.sin_port));
    if (!e && (fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0)
        e = errno;
    if (e) {
        pthread_mutex_unlock(&vm.mu);
        return vm_fail(e);
    }
    /* a full backlog blocks connect; give up (UNREACHABLE) rather than wait forever */
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        e = errno;
        close(fd);
        id->state = VM_CM_DONE;
        if (e == ENOENT || e == ECONNREFUSED)
            vm_cm_event(id, NULL, RDMA_CM_EVENT_REJECTED, VM_REJ_NO_LISTENER, NULL, 0, 0, NULL);
        else
            vm_cm_event(id, NULL, RDMA_CM_EVENT_UNREACHABLE, -e, NULL, 0, 0, NULL);
        pthread_mutex_unlock(&vm.mu);
        return 0;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct vm_conn *c = vm_conn_new(fd, id, NULL);
    if (!c) {
        close(fd);
        pthread_mutex_unlock(&vm.mu);
        return vm_fail(ENOMEM);
    }
    id->conn = c;
    id->retry_cnt = p->retry_count;
    id->rnr_retry = p->rnr_retry_count;
    struct vm_pkt h = {.type = VM_PKT_REQ,
                       .qpn = id->id.qp->qp_num,
                       .retry_cnt = p->retry_count,
                       .rnr_retry = p->rnr_retry_count,
                       .resp_res = p->responder_resources,
                       .init_depth = p->initiator_depth,
                       .addr = id->id.route.addr.src_sin.sin_addr.s_addr,
                       .port = id->id.route.addr.src_sin.sin_port};
    int st = vm_conn_ctl(c, &h, p->private_data, p->private_data_len, 0);
    if (st == 0)
        id->state = VM_CM_CONNECTING;
    pthread_mutex_unlock(&vm.mu);
    return st ? vm_fail(st) : 0;
}

void vm_cm_request(struct vm_conn *c, const struct vm_pkt *req, const void *pdata)
{
    struct vm_cmid *l = c->listen;
    if (!l || l->state != VM_CM_LISTEN) {
        struct vm_pkt rej = {.type = VM_PKT_REJ};
        vm_conn_ctl(c, &rej, NULL, 0, 1);
        return;
    }
    struct vm_cmid *id = calloc(1, sizeof *id);
    if (!id) {
        struct vm_pkt rej = {.type = VM_PKT_REJ};
        vm_conn_ctl(c, &rej, NULL, 0, 1);
        return;
    }
    id->id.verbs = vm_cm_context();
    id->id.channel = l->id.channel;
    id->id.context = l->id.context;
    id->id.ps = l->id.ps;
    id->id.qp_type = IBV_QPT_RC;
    id->id.port_num = 1;
    id->id.route.addr.src_sin = l->id.route.addr.src_sin;
    id->id.route.addr.dst_sin.sin_family = AF_INET;
    id->id.route.addr.dst_sin.sin_addr.s_addr = req->addr;
    id->id.route.addr.dst_sin.sin_port = req->port;
    id->lfd = -1;
    id->state = VM_CM_REQ_RCVD;
    id->conn = c;
    id->remote_qpn = req->qpn;
    id->retry_cnt = req->retry_cnt;
    c->id = id;
    id->next = vm.ids;
    vm.ids = id;
    vm_cm_event(id, l, RDMA_CM_EVENT_CONNECT_REQUEST, 0, pdata, req->pdlen, VM_REQ_PDATA, req);
}

int vm_rdma_accept(struct rdma_cm_id *rid, struct rdma_conn_param *p)
{
    struct vm_cmid *id = (struct vm_cmid *)rid;
    if (p && (p->private_data_len > VM_REP_PDATA || (p->private_data_len && !p->private_data)))
        return vm_fail(EINVAL);
    pthread_mutex_lock(&vm.mu);
    int st = EINVAL;
    if (id->state != VM_CM_REQ_RCVD || !id->id.qp || !id->conn)
        goto out;
    st = vm_qp_connect(id, id->retry_cnt, p ? p->rnr_retry_count : 7);
    if (st)
        goto out;
    struct vm_pkt h = {.type = VM_PKT_REP, .qpn = id->id.qp->qp_num};
    st = vm_conn_ctl(id->conn, &h, p ? p->private_data : NULL, p ? p->private_data_len : 0, 0);
    if (st == 0)
        id->state = VM_CM_ACCEPTED;
out:
    pthread_mutex_unlock(&vm.mu);
    return st ? vm_fail(st) : 0;
}

int vm_rdma_reject(struct rdma_cm_id *rid, const void *pdata, uint8_t len)
{
    struct vm_cmid *id = (struct vm_cmid *)rid;
    if (len > VM_REJ_PDATA || (len && !pdata))
        return vm_fail(EINVAL);
    pthread_mutex_lock(&vm.mu);
    int st = EINVAL;
    if (id->state == VM_CM_REQ_RCVD && id->conn) {
        struct vm_pkt h = {.type = VM_PKT_REJ};
        st = vm_conn_ctl(id->conn, &h, pdata, len, 1);
        id->state = VM_CM_DONE;
    }
    pthread_mutex_unlock(&vm.mu);
    return st ? vm_fail(st) : 0;
}

int vm_rdma_disconnect(struct rdma_cm_id *rid)
{
    struct vm_cmid *id = (struct vm_cmid *)rid;
    pthread_mutex_lock(&vm.mu);
    int st = EINVAL;
    if ((id->state == VM_CM_ESTABLISHED || id->state == VM_CM_ACCEPTED ||
         id->state == VM_CM_CONNECTING) && id->conn) {
        if (id->id.qp)
            vm_qp_error((struct vm_qp *)id->id.qp, IBV_WC_WR_FLUSH_ERR);
        struct vm_pkt h = {.type = VM_PKT_DREQ};
        st = vm_conn_ctl(id->conn, &h, NULL, 0, 0);
        id->state = VM_CM_DISCONNECTING;
    }
    pthread_mutex_unlock(&vm.mu);
    return st ? vm_fail(st) : 0;
}

/* ---- the handshake's messages, as the NIC thread receives them ---- */

static void vm_disconnected(struct vm_cmid *id, enum ibv_wc_status head_status)
{
    if (id->id.qp)
        vm_qp_error((struct vm_qp *)id->id.qp, head_status);
    if (!id->disconnected)
        vm_cm_event(id, NULL, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, 0, 0, NULL);
    id->disconnected = 1;
    id->state = VM_CM_DONE;
}

void vm_cm_packet(struct vm_conn *c, const struct vm_pkt *h, const void *payload)
{
    struct vm_cmid *id = c->id;
    if (h->type == VM_PKT_REQ) {
        if (!id && h->pdlen <= VM_REQ_PDATA && h->pdlen <= h->len)
            vm_cm_request(c, h, payload);
        return;
    }
    if (!id)
        return;
    switch (h->type) {
    case VM_PKT_REP:
        if (id->state != VM_CM_CONNECTING)
            return;
        id->remote_qpn = h->qpn;
        if (vm_qp_connect(id, id->retry_cnt, id->rnr_retry) != 0) {
            id->state = VM_CM_DONE;
            vm_cm_event(id, NULL, RDMA_CM_EVENT_CONNECT_ERROR, -EINVAL, NULL, 0, 0, NULL);
            return;
        }
        struct vm_pkt rtu = {.type = VM_PKT_RTU};
        vm_conn_ctl(c, &rtu, NULL, 0, 0);
        id->state = VM_CM_ESTABLISHED;
        vm_cm_event(id, NULL, RDMA_CM_EVENT_ESTABLISHED, 0, payload,
                    h->pdlen < h->len ? h->pdlen : h->len, VM_REP_PDATA, NULL);
        return;
    case VM_PKT_RTU:
        if (id->state == VM_CM_ACCEPTED) {
            id->state = VM_CM_ESTABLISHED;
            vm_cm_event(id, NULL, RDMA_CM_EVENT_ESTABLISHED, 0, NULL, 0, 0, NULL);
        }
        return;
    case VM_PKT_REJ:
        if (id->state == VM_CM_CONNECTING) {
            id->state = VM_CM_DONE;
            vm_cm_event(id, NULL, RDMA_CM_EVENT_REJECTED, VM_REJ_CONSUMER, payload,
                        h->pdlen < h->len ? h->pdlen : h->len, VM_REJ_PDATA, NULL);
        }
        return;
    case VM_PKT_DREQ: {
        struct vm_pkt drep = {.type = VM_PKT_DREP};
        vm_conn_ctl(c, &drep, NULL, 0, 0);
        vm_disconnected(id, IBV_WC_WR_FLUSH_ERR);
        return;
    }
    case VM_PKT_DREP:
        vm_disconnected(id, IBV_WC_WR_FLUSH_ERR);
        return;
    default:
        return;
    }
}

/* The connection's socket closed under it. */
void vm_cm_lost(struct vm_conn *c)
{
    struct vm_cmid *id = c->id;
    if (!id)
        return;
    switch (id->state) {
    case VM_CM_CONNECTING:
        id->state = VM_CM_DONE;
        vm_cm_event(id, NULL, RDMA_CM_EVENT_UNREACHABLE, -ETIMEDOUT, NULL, 0, 0, NULL);
        break;
    case VM_CM_REQ_RCVD:
    case VM_CM_ACCEPTED:
        if (id->id.qp)
            vm_qp_error((struct vm_qp *)id->id.qp, IBV_WC_RETRY_EXC_ERR);
        id->state = VM_CM_DONE;
        vm_cm_event(id, NULL, RDMA_CM_EVENT_CONNECT_ERROR, -ECONNRESET, NULL, 0, 0, NULL);
        break;
    case VM_CM_ESTABLISHED:
    case VM_CM_DISCONNECTING:
        vm_disconnected(id, IBV_WC_RETRY_EXC_ERR);
        break;
    default:
        break;
    }
}
