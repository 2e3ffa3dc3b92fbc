/*
 * The software model's verbs objects: one device ("model0", one Ethernet port that
 * is always active, four GIDs of which 2 and 3 carry 127.0.0.1 like RoCE's
 * IPv4-mapped entries), protection domains, memory regions with lkey/rkey and the
 * checks a NIC makes on them, completion queues with completion channels (a pipe the
 * application can poll), and RC queue pairs with the state machine of the IB spec:
 * RESET -> INIT -> RTR -> RTS, each step requiring its attributes, any state -> ERR
 * or RESET, anything else EINVAL. A QP that enters ERR completes every outstanding
 * work request with IBV_WC_WR_FLUSH_ERR (the one that failed gets its own status),
 * and work posted to it later is flushed at once, as hardware does.
 *
 * What the model does not emulate is written down in docs/verbs.md: timing, the
 * real retry timers, packet loss, NIC ordering beyond "in order per QP", RDMA READ
 * and atomics, SRQs, UD, memory windows, and which pages are writable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "verbs_model.h"

struct vm_model vm = {.mu = PTHREAD_MUTEX_INITIALIZER, .kickfd = -1};
static pthread_mutex_t vm_life = PTHREAD_MUTEX_INITIALIZER;

void vm_kick(void)
{
    uint64_t one = 1;
    ssize_t r = write(vm.kickfd, &one, sizeof one);
    (void)r;
}

/* ---- lifetime: the model lives while a device list, device or event channel is open ---- */

int vm_acquire(void)
{
    int st = 0;
    pthread_mutex_lock(&vm_life);
    pthread_mutex_lock(&vm.mu);
    if (vm.users++ > 0)
        goto out;
    memset(&vm.dev, 0, sizeof vm.dev);
    vm.dev.node_type = IBV_NODE_CA;
    vm.dev.transport_type = IBV_TRANSPORT_IB;
    snprintf(vm.dev.name, sizeof vm.dev.name, "model0");
    snprintf(vm.dev.dev_name, sizeof vm.dev.dev_name, "uverbs-model0");
    vm.cmctx = calloc(1, sizeof *vm.cmctx);
    vm.kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!vm.cmctx || vm.kickfd < 0) {
        st = errno ? errno : ENOMEM;
        goto undo;
    }
    vm.cmctx->ctx.device = &vm.dev;
    vm.cmctx->ctx.cmd_fd = vm.cmctx->ctx.async_fd = -1;
    vm.cmctx->ctx.num_comp_vectors = 1;
    uint32_t seed = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
    vm.next_key = (seed & 0xffff00u) | 1u;
    vm.next_qpn = 0x100u + (seed & 0xfff);
    vm.next_port = 32768u + seed % 28000u;
    st = vm_nic_start();
    if (st == 0)
        goto out;
undo:
    if (vm.kickfd >= 0)
        close(vm.kickfd);
    vm.kickfd = -1;
    free(vm.cmctx);
    vm.cmctx = NULL;
    vm.users = 0;
out:
    pthread_mutex_unlock(&vm.mu);
    pthread_mutex_unlock(&vm_life);
    if (st)
        errno = st;
    return st;
}

void vm_release(void)
{
    pthread_mutex_lock(&vm_life);
    pthread_mutex_lock(&vm.mu);
    if (--vm.users > 0) {
        pthread_mutex_unlock(&vm.mu);
        pthread_mutex_unlock(&vm_life);
        return;
    }
    pthread_mutex_unlock(&vm.mu);
    vm_nic_stop();
    pthread_mutex_lock(&vm.mu);
    /* whatever the application left behind */
    while (vm.conns)
        vm_conn_free(vm.conns);
    for (struct vm_cmid *id = vm.ids, *n; id; id = n) {
        n = id->next;
        if (id->lfd >= 0) {
            close(id->lfd);
            unlink(id->path);
        }
        free(id);
    }
    vm.ids = NULL;
    while (vm.qps)
        vm_qp_destroy(vm.qps);
    for (struct vm_cq *cq = vm.cqs, *n; cq; cq = n) {
        n = cq->next;
        free(cq->ring);
        free(cq);
    }
    vm.cqs = NULL;
    for (struct vm_mr *m = vm.mrs, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    vm.mrs = NULL;
    close(vm.kickfd);
    vm.kickfd = -1;
    free(vm.cmctx);
    vm.cmctx = NULL;
    pthread_mutex_unlock(&vm.mu);
    pthread_mutex_unlock(&vm_life);
}

struct ibv_context *vm_cm_context(void)
{
    return &vm.cmctx->ctx;
}

/* ---- device and port ---- */

static struct ibv_device **vm_get_device_list(int *num)
{
    struct ibv_device **list = calloc(2, sizeof *list);
    if (!list || vm_acquire()) {
        free(list);
        errno = ENOMEM;
        return NULL;
    }
    list[0] = &vm.dev;
    if (num)
        *num = 1;
    return list;
}

static void vm_free_device_list(struct ibv_device **list)
{
    free(list);
    vm_release();
}

static const char *vm_get_device_name(struct ibv_device *dev)
{
    return dev->name;
}

static struct ibv_context *vm_open_device(struct ibv_device *dev)
{
    if (dev != &vm.dev) {
        errno = ENODEV;
        return NULL;
    }
    struct vm_ctx *c = calloc(1, sizeof *c);
    if (!c || vm_acquire()) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->ctx.device = dev;
    c->ctx.cmd_fd = c->ctx.async_fd = -1;
    c->ctx.num_comp_vectors = 1;
    return &c->ctx;
}

static int vm_close_device(struct ibv_context *ctx)
{
    free((struct vm_ctx *)ctx);
    vm_release();
    return 0;
}

static int vm_query_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *attr)
{
    (void)ctx;
    if (port != 1)
        return EINVAL;
    memset(attr, 0, sizeof *attr);
    attr->state = IBV_PORT_ACTIVE;
    attr->max_mtu = IBV_MTU_4096;
    attr->active_mtu = IBV_MTU_1024;
    attr->gid_tbl_len = 4;
    attr->max_msg_sz = (uint32_t)VM_MAX_MSG;
    attr->link_layer = IBV_LINK_LAYER_ETHERNET;
    attr->phys_state = 5; /* LinkUp */
    attr->active_width = 2;
    attr->active_speed = 32;
    return 0;
}

static int vm_query_gid(struct ibv_context *ctx, uint8_t port, int index, union ibv_gid *gid)
{
    (void)ctx;
    if (port != 1 || index < 0 || index > 3) {
        errno = EINVAL;
        return -1;
    }
    memset(gid, 0, sizeof *gid);
    if (index < 2) { /* link-local, as RoCE derives it from the MAC */
        gid->raw[0] = 0xfe;
        gid->raw[1] = 0x80;
        gid->raw[11] = 0xff;
        gid->raw[12] = 0xfe;
        gid->raw[15] = 1;
    } else { /* ::ffff:127.0.0.1 */
        gid->raw[10] = gid->raw[11] = 0xff;
        uint32_t a = VM_IPV4;
        gid->raw[12] = (uint8_t)(a >> 24);
        gid->raw[13] = (uint8_t)(a >> 16);
        gid->raw[14] = (uint8_t)(a >> 8);
        gid->raw[15] = (uint8_t)a;
    }
    return 0;
}

/* ---- protection domains and memory regions ---- */

static struct ibv_pd *vm_alloc_pd(struct ibv_context *ctx)
{
    if (!ctx) {
        errno = EINVAL;
        return NULL;
    }
    struct vm_pd *p = calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    p->pd.context = ctx;
    return &p->pd;
}

static int vm_dealloc_pd(struct ibv_pd *pd)
{
    struct vm_pd *p = (struct vm_pd *)pd;
    pthread_mutex_lock(&vm.mu);
    int busy = p->users > 0;
    pthread_mutex_unlock(&vm.mu);
    if (busy)
        return EBUSY;
    free(p);
    return 0;
}

/* 1 if every page of [addr, addr+len) is mapped (what pinning the pages needs). */
static int vm_mapped(void *addr, size_t len)
{
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)addr & ~(uintptr_t)(pg - 1);
    uintptr_t hi = ((uintptr_t)addr + len + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
    size_t pages = (hi - lo) / (size_t)pg;
    unsigned char *vec = malloc(pages);
    if (!vec)
        return 0;
    int ok = mincore((void *)lo, hi - lo, vec) == 0;
    free(vec);
    return ok;
}

static struct ibv_mr *vm_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access)
{
    const int remote = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC;
    if (!pd || !addr || len == 0 || (uintptr_t)addr + len < (uintptr_t)addr ||
        ((access & remote) && !(access & IBV_ACCESS_LOCAL_WRITE))) {
        errno = EINVAL;
        return NULL;
    }
    if (!vm_mapped(addr, len)) {
        errno = EFAULT;
        return NULL;
    }
    struct vm_mr *m = calloc(1, sizeof *m);
    if (!m) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_lock(&vm.mu);
    m->mr.context = pd->context;
    m->mr.pd = pd;
    m->mr.addr = addr;
    m->mr.length = len;
    m->mr.handle = vm.next_key;
    m->mr.lkey = m->mr.rkey = vm.next_key;
    vm.next_key += 0x100u; /* keys of deregistered regions are not handed out again soon */
    m->access = access;
    m->next = vm.mrs;
    vm.mrs = m;
    ((struct vm_pd *)pd)->users++;
    pthread_mutex_unlock(&vm.mu);
    return &m->mr;
}

static int vm_dereg_mr(struct ibv_mr *mr)
{
    pthread_mutex_lock(&vm.mu);
    struct vm_mr **pp = &vm.mrs;
    while (*pp && &(*pp)->mr != mr)
        pp = &(*pp)->next;
    if (!*pp) {
        pthread_mutex_unlock(&vm.mu);
        return EINVAL;
    }
    struct vm_mr *m = *pp;
    *pp = m->next;
    ((struct vm_pd *)m->mr.pd)->users--;
    pthread_mutex_unlock(&vm.mu);
    free(m);
    return 0;
}

struct vm_mr *vm_mr_by_key(uint32_t key, int rkey)
{
    for (struct vm_mr *m = vm.mrs; m; m = m->next)
        if ((rkey ? m->mr.rkey : m->mr.lkey) == key)
            return m;
    return NULL;
}

/* ---- completion channels and queues ---- */

static struct ibv_comp_channel *vm_create_comp_channel(struct ibv_context *ctx)
{
    struct vm_channel *c = calloc(1, sizeof *c);
    int p[2];
    if (!c || pipe2(p, O_CLOEXEC) != 0) {
        free(c);
        errno = errno ? errno : ENOMEM;
        return NULL;
    }
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    c->ch.context = ctx;
    c->ch.fd = p[0];
    c->wfd = p[1];
    return &c->ch;
}

static int vm_destroy_comp_channel(struct ibv_comp_channel *ch)
{
    struct vm_channel *c = (struct vm_channel *)ch;
    pthread_mutex_lock(&vm.mu);
    int busy = c->cqs > 0;
    pthread_mutex_unlock(&vm.mu);
    if (busy)
        return EBUSY;
    close(c->ch.fd);
    close(c->wfd);
    free(c);
    return 0;
}

static struct ibv_cq *vm_create_cq(struct ibv_context *ctx, int cqe, void *cq_context,
                                   struct ibv_comp_channel *ch, int comp_vector)
{
    if (!ctx || cqe < 1 || cqe > VM_MAX_CQE || comp_vector != 0) {
        errno = EINVAL;
        return NULL;
    }
    struct vm_cq *cq = calloc(1, sizeof *cq);
    struct ibv_wc *ring = calloc((size_t)cqe, sizeof *ring);
    if (!cq || !ring) {
        free(cq);
        free(ring);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_lock(&vm.mu);
    cq->cq.context = ctx;
    cq->cq.channel = ch;
    cq->cq.cq_context = cq_context;
    cq->cq.cqe = cqe;
    cq->ring = ring;
    cq->cap = cqe;
    cq->serial = ++vm.next_cq_serial;
    cq->next = vm.cqs;
    vm.cqs = cq;
    if (ch)
        ((struct vm_channel *)ch)->cqs++;
    pthread_mutex_unlock(&vm.mu);
    return &cq->cq;
}

/* Unlike libibverbs, which blocks until every event got is acknowledged, the model
   refuses (EBUSY) so that the bug shows instead of hanging. */
static int vm_destroy_cq(struct ibv_cq *icq)
{
    struct vm_cq *cq = (struct vm_cq *)icq;
    pthread_mutex_lock(&vm.mu);
    if (cq->qps > 0 || cq->got_events != cq->acked_events) {
        pthread_mutex_unlock(&vm.mu);
        return EBUSY;
    }
    struct vm_cq **pp = &vm.cqs;
    while (*pp != cq)
        pp = &(*pp)->next;
    *pp = cq->next;
    if (cq->cq.channel)
        ((struct vm_channel *)cq->cq.channel)->cqs--;
    pthread_mutex_unlock(&vm.mu);
    free(cq->ring);
    free(cq);
    return 0;
}

/* solicited_only is taken as "any completion": the model has no solicited events. */
static int vm_req_notify_cq(struct ibv_cq *icq, int solicited_only)
{
    (void)solicited_only;
    pthread_mutex_lock(&vm.mu);
    ((struct vm_cq *)icq)->armed = 1;
    pthread_mutex_unlock(&vm.mu);
    return 0;
}

void vm_cq_push(struct vm_cq *cq, const struct ibv_wc *wc)
{
    if (cq->count == cq->cap) {
        cq->overflow = 1;
        return;
    }
    cq->ring[(cq->head + cq->count) % cq->cap] = *wc;
    cq->count++;
    if (cq->armed && cq->cq.channel) {
        cq->armed = 0;
        ssize_t r = write(((struct vm_channel *)cq->cq.channel)->wfd, &cq->serial,
                          sizeof cq->serial);
        (void)r;
    }
}

static int vm_get_cq_event(struct ibv_comp_channel *ch, struct ibv_cq **out, void **cq_context)
{
    for (;;) {
        uint64_t serial;
        ssize_t n = read(ch->fd, &serial, sizeof serial);
        if (n != (ssize_t)sizeof serial) {
            if (n >= 0)
                errno = EIO;
            return -1;
        }
        pthread_mutex_lock(&vm.mu);
        struct vm_cq *cq = vm.cqs;
        while (cq && (cq->serial != serial || cq->cq.channel != ch))
            cq = cq->next;
        if (cq) {
            cq->got_events++;
            *out = &cq->cq;
            *cq_context = cq->cq.cq_context;
        }
        pthread_mutex_unlock(&vm.mu);
        if (cq)
            return 0;
        /* an event of a destroyed CQ: skip it */
    }
}

static void vm_ack_cq_events(struct ibv_cq *icq, unsigned int n)
{
    pthread_mutex_lock(&vm.mu);
    ((struct vm_cq *)icq)->acked_events += n;
    pthread_mutex_unlock(&vm.mu);
}

/* An overflowed CQ is broken for good, as on hardware (which raises IBV_EVENT_CQ_ERR). */
static int vm_poll_cq(struct ibv_cq *icq, int num, struct ibv_wc *wc)
{
    struct vm_cq *cq = (struct vm_cq *)icq;
    pthread_mutex_lock(&vm.mu);
    int n = -1;
    if (!cq->overflow) {
        for (n = 0; n < num && cq->count > 0; n++) {
            wc[n] = cq->ring[cq->head];
            cq->head = (cq->head + 1) % cq->cap;
            cq->count--;
        }
    }
    pthread_mutex_unlock(&vm.mu);
    return n;
}

/* ---- queue pairs ---- */

struct vm_qp *vm_qp_create(struct ibv_pd *pd, struct ibv_qp_init_attr *a)
{
    struct ibv_qp_cap *c = &a->cap;
    if (a->qp_type != IBV_QPT_RC || a->srq) {
        errno = EOPNOTSUPP;
        return NULL;
    }
    if (!a->send_cq || !a->recv_cq || a->send_cq->context != pd->context ||
        a->recv_cq->context != pd->context || c->max_send_wr < 1 || c->max_send_wr > VM_MAX_WR ||
        c->max_recv_wr < 1 || c->max_recv_wr > VM_MAX_WR || c->max_send_sge > VM_MAX_SGE ||
        c->max_recv_sge > VM_MAX_SGE || c->max_inline_data > VM_MAX_INLINE) {
        errno = EINVAL;
        return NULL;
    }
    struct vm_qp *q = calloc(1, sizeof *q);
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    q->sq = calloc(c->max_send_wr, sizeof *q->sq);
    q->rq = calloc(c->max_recv_wr, sizeof *q->rq);
    if (!q->sq || !q->rq) {
        free(q->sq);
        free(q->rq);
        free(q);
        errno = ENOMEM;
        return NULL;
    }
    if (c->max_send_sge < 1)
        c->max_send_sge = 1;
    if (c->max_recv_sge < 1)
        c->max_recv_sge = 1;
    q->cap = *c;
    q->sq_sig_all = a->sq_sig_all;
    q->qp.context = pd->context;
    q->qp.qp_context = a->qp_context;
    q->qp.pd = pd;
    q->qp.send_cq = a->send_cq;
    q->qp.recv_cq = a->recv_cq;
    q->qp.qp_num = vm.next_qpn++ & 0xffffffu;
    q->qp.state = IBV_QPS_RESET;
    q->qp.qp_type = IBV_QPT_RC;
    ((struct vm_pd *)pd)->users++;
    ((struct vm_cq *)a->send_cq)->qps++;
    ((struct vm_cq *)a->recv_cq)->qps++;
    q->next = vm.qps;
    vm.qps = q;
    return q;
}

static void vm_sq_clear(struct vm_qp *q)
{
    for (uint64_t i = q->sq_head; i < q->sq_tail; i++) {
        free(q->sq[i % q->cap.max_send_wr].inl);
        q->sq[i % q->cap.max_send_wr].inl = NULL;
    }
    q->sq_head = q->sq_tx = q->sq_tail;
    q->tx_off = 0;
}

void vm_qp_destroy(struct vm_qp *q)
{
    struct vm_qp **pp = &vm.qps;
    while (*pp != q)
        pp = &(*pp)->next;
    *pp = q->next;
    vm_sq_clear(q);
    ((struct vm_pd *)q->qp.pd)->users--;
    ((struct vm_cq *)q->qp.send_cq)->qps--;
    ((struct vm_cq *)q->qp.recv_cq)->qps--;
    if (q->cmid)
        q->cmid->id.qp = NULL;
    free(q->sq);
    free(q->rq);
    free(q);
}

static void vm_send_cqe(struct vm_qp *q, const struct vm_swr *w, enum ibv_wc_status st)
{
    if (st == IBV_WC_SUCCESS && !w->signaled && !q->sq_sig_all)
        return;
    struct ibv_wc wc = {.wr_id = w->wr_id, .status = st, .qp_num = q->qp.qp_num};
    wc.opcode = (w->opcode == IBV_WR_RDMA_WRITE || w->opcode == IBV_WR_RDMA_WRITE_WITH_IMM)
                    ? IBV_WC_RDMA_WRITE
                    : IBV_WC_SEND;
    wc.byte_len = (uint32_t)w->total;
    vm_cq_push((struct vm_cq *)q->qp.send_cq, &wc);
}

static void vm_recv_cqe(struct vm_qp *q, uint64_t wr_id, enum ibv_wc_status st)
{
    struct ibv_wc wc = {.wr_id = wr_id, .status = st, .opcode = IBV_WC_RECV,
                        .qp_num = q->qp.qp_num};
    vm_cq_push((struct vm_cq *)q->qp.recv_cq, &wc);
}

/* Complete every outstanding work request: sq[failed] (if that index is outstanding)
   with status, every other with IBV_WC_WR_FLUSH_ERR; the QP is in ERR afterwards. */
static void vm_qp_flush(struct vm_qp *q, uint64_t failed, enum ibv_wc_status status)
{
    q->qp.state = IBV_QPS_ERR;
    for (uint64_t i = q->sq_head; i < q->sq_tail; i++) {
        struct vm_swr *w = &q->sq[i % q->cap.max_send_wr];
        vm_send_cqe(q, w, i == failed ? status : IBV_WC_WR_FLUSH_ERR);
    }
    vm_sq_clear(q);
    if (q->in_msg && q->in_has_wqe)
        vm_recv_cqe(q, q->in_wqe.wr_id, IBV_WC_WR_FLUSH_ERR);
    q->in_msg = q->in_has_wqe = 0;
    for (uint64_t i = q->rq_head; i < q->rq_tail; i++)
        vm_recv_cqe(q, q->rq[i % q->cap.max_recv_wr].wr_id, IBV_WC_WR_FLUSH_ERR);
    q->rq_head = q->rq_tail;
}

/* The requester's view of a failure: the oldest outstanding request, if it was on the
   wire, gets status; everything else is flushed. */
void vm_qp_error(struct vm_qp *q, enum ibv_wc_status head_status)
{
    if (q->qp.state == IBV_QPS_ERR)
        return;
    int on_wire = q->sq_head < q->sq_tx || (q->sq_head == q->sq_tx && q->tx_off > 0);
    vm_qp_flush(q, on_wire ? q->sq_head : UINT64_MAX, head_status);
}

/* A local error on sq[idx] found while starting to transmit it. */
void vm_qp_local_error(struct vm_qp *q, uint64_t idx, enum ibv_wc_status status)
{
    vm_qp_flush(q, idx, status);
}

/* Which attributes each RC transition requires and allows (IB spec, table "QP state
   transition properties"), restricted to what the model stores. */
struct vm_transition {
    enum ibv_qp_state from, to;
    int required, optional;
};

static const struct vm_transition vm_transitions[] = {
    {IBV_QPS_RESET, IBV_QPS_INIT,
     IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, 0},
    {IBV_QPS_INIT, IBV_QPS_INIT, IBV_QP_STATE,
     IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS},
    {IBV_QPS_INIT, IBV_QPS_RTR,
     IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
         IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER,
     IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX},
    {IBV_QPS_RTR, IBV_QPS_RTS,
     IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
         IBV_QP_MAX_QP_RD_ATOMIC,
     IBV_QP_CUR_STATE | IBV_QP_ACCESS_FLAGS | IBV_QP_MIN_RNR_TIMER | IBV_QP_ALT_PATH |
         IBV_QP_PATH_MIG_STATE},
    {IBV_QPS_RTS, IBV_QPS_RTS, 0,
     IBV_QP_STATE | IBV_QP_CUR_STATE | IBV_QP_ACCESS_FLAGS | IBV_QP_MIN_RNR_TIMER |
         IBV_QP_ALT_PATH | IBV_QP_PATH_MIG_STATE},
};

int vm_qp_modify(struct vm_qp *q, struct ibv_qp_attr *a, int mask)
{
    enum ibv_qp_state cur = q->qp.state;
    enum ibv_qp_state next = (mask & IBV_QP_STATE) ? a->qp_state : cur;
    if ((mask & IBV_QP_CUR_STATE) && a->cur_qp_state != cur)
        return EINVAL;
    if (next == IBV_QPS_RESET || next == IBV_QPS_ERR) {
        if (mask != IBV_QP_STATE)
            return EINVAL;
        if (next == IBV_QPS_ERR) {
            vm_qp_flush(q, UINT64_MAX, IBV_WC_WR_FLUSH_ERR);
            return 0;
        }
        vm_sq_clear(q);
        q->rq_head = q->rq_tail;
        q->in_msg = q->in_has_wqe = 0;
        q->next_msg = q->expect = 0;
        q->epoch = q->min_epoch = 0;
        q->rnr_until_ns = 0;
        q->qp.state = IBV_QPS_RESET;
        return 0;
    }
    const struct vm_transition *t = NULL;
    for (size_t i = 0; i < sizeof vm_transitions / sizeof vm_transitions[0]; i++)
        if (vm_transitions[i].from == cur && vm_transitions[i].to == next)
            t = &vm_transitions[i];
    if (!t || (mask & t->required) != t->required || (mask & ~(t->required | t->optional)))
        return EINVAL;
    if (((mask & IBV_QP_PORT) && a->port_num != 1) ||
        ((mask & IBV_QP_AV) && a->ah_attr.port_num != 1) ||
        ((mask & IBV_QP_PATH_MTU) && (a->path_mtu < IBV_MTU_256 || a->path_mtu > IBV_MTU_4096)) ||
        ((mask & IBV_QP_TIMEOUT) && a->timeout > 31) ||
        ((mask & IBV_QP_RETRY_CNT) && a->retry_cnt > 7) ||
        ((mask & IBV_QP_RNR_RETRY) && a->rnr_retry > 7) ||
        ((mask & IBV_QP_MIN_RNR_TIMER) && a->min_rnr_timer > 31))
        return EINVAL;
    if (mask & IBV_QP_PORT)
        q->port = a->port_num;
    if (mask & IBV_QP_ACCESS_FLAGS)
        q->access = (int)a->qp_access_flags;
    if (mask & IBV_QP_DEST_QPN)
        q->dest_qpn = a->dest_qp_num;
    if (mask & IBV_QP_MIN_RNR_TIMER)
        q->min_rnr_timer = a->min_rnr_timer;
    if (mask & IBV_QP_TIMEOUT)
        q->timeout = a->timeout;
    if (mask & IBV_QP_RETRY_CNT)
        q->retry_cnt = a->retry_cnt;
    if (mask & IBV_QP_RNR_RETRY)
        q->rnr_retry = a->rnr_retry;
    q->qp.state = next;
    if (next == IBV_QPS_RTS)
        vm_kick();
    return 0;
}

static int vm_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask)
{
    pthread_mutex_lock(&vm.mu);
    int st = vm_qp_modify((struct vm_qp *)qp, attr, mask);
    pthread_mutex_unlock(&vm.mu);
    return st;
}

static int vm_query_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask,
                       struct ibv_qp_init_attr *init)
{
    (void)mask;
    struct vm_qp *q = (struct vm_qp *)qp;
    pthread_mutex_lock(&vm.mu);
    memset(a, 0, sizeof *a);
    memset(init, 0, sizeof *init);
    a->qp_state = a->cur_qp_state = q->qp.state;
    a->qp_access_flags = (unsigned)q->access;
    a->port_num = (uint8_t)q->port;
    a->dest_qp_num = q->dest_qpn;
    a->timeout = (uint8_t)q->timeout;
    a->retry_cnt = (uint8_t)q->retry_cnt;
    a->rnr_retry = (uint8_t)q->rnr_retry;
    a->min_rnr_timer = (uint8_t)q->min_rnr_timer;
    a->cap = q->cap;
    init->send_cq = q->qp.send_cq;
    init->recv_cq = q->qp.recv_cq;
    init->cap = q->cap;
    init->qp_type = IBV_QPT_RC;
    init->sq_sig_all = q->sq_sig_all;
    pthread_mutex_unlock(&vm.mu);
    return 0;
}

static void vm_sge_copy(struct vm_sge *dst, const struct ibv_sge *src, int n, uint64_t *total)
{
    uint64_t t = 0;
    for (int i = 0; i < n; i++) {
        dst[i].addr = src[i].addr;
        dst[i].len = src[i].length;
        dst[i].lkey = src[i].lkey;
        t += src[i].length;
    }
    *total = t;
}

static int vm_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
    struct vm_qp *q = (struct vm_qp *)qp;
    int st = 0;
    pthread_mutex_lock(&vm.mu);
    for (; wr; wr = wr->next) {
        enum ibv_qp_state s = q->qp.state;
        if (s == IBV_QPS_RESET || s == IBV_QPS_INIT || s == IBV_QPS_RTR ||
            (wr->opcode != IBV_WR_SEND && wr->opcode != IBV_WR_SEND_WITH_IMM &&
             wr->opcode != IBV_WR_RDMA_WRITE && wr->opcode != IBV_WR_RDMA_WRITE_WITH_IMM) ||
            wr->num_sge < 0 || wr->num_sge > (int)q->cap.max_send_sge) {
            st = EINVAL;
            break;
        }
        if (q->sq_tail - q->sq_head >= q->cap.max_send_wr) {
            st = ENOMEM;
            break;
        }
        struct vm_swr w = {.wr_id = wr->wr_id,
                           .opcode = wr->opcode,
                           .signaled = !!(wr->send_flags & IBV_SEND_SIGNALED),
                           .imm = wr->imm_data,
                           .rnr_left = q->rnr_retry,
                           .nsge = wr->num_sge};
        if (wr->opcode == IBV_WR_RDMA_WRITE || wr->opcode == IBV_WR_RDMA_WRITE_WITH_IMM) {
            w.raddr = wr->wr.rdma.remote_addr;
            w.rkey = wr->wr.rdma.rkey;
        }
        vm_sge_copy(w.sge, wr->sg_list, wr->num_sge, &w.total);
        if (wr->send_flags & IBV_SEND_INLINE) {
            if (w.total > q->cap.max_inline_data) {
                st = EINVAL;
                break;
            }
            w.inl = malloc(w.total ? w.total : 1);
            if (!w.inl) {
                st = ENOMEM;
                break;
            }
            size_t off = 0;
            for (int i = 0; i < w.nsge; i++) {
                memcpy(w.inl + off, (void *)(uintptr_t)w.sge[i].addr, w.sge[i].len);
                off += w.sge[i].len;
            }
        }
        if (s == IBV_QPS_ERR) {
            vm_send_cqe(q, &w, IBV_WC_WR_FLUSH_ERR);
            free(w.inl);
            continue;
        }
        w.msg = q->next_msg++;
        q->sq[q->sq_tail % q->cap.max_send_wr] = w;
        q->sq_tail++;
    }
    if (st)
        *bad = wr;
    vm_kick();
    pthread_mutex_unlock(&vm.mu);
    return st;
}

static int vm_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
    struct vm_qp *q = (struct vm_qp *)qp;
    int st = 0;
    pthread_mutex_lock(&vm.mu);
    for (; wr; wr = wr->next) {
        if (q->qp.state == IBV_QPS_RESET || wr->num_sge < 0 ||
            wr->num_sge > (int)q->cap.max_recv_sge) {
            st = EINVAL;
            break;
        }
        if (q->qp.state == IBV_QPS_ERR) {
            vm_recv_cqe(q, wr->wr_id, IBV_WC_WR_FLUSH_ERR);
            continue;
        }
        if (q->rq_tail - q->rq_head >= q->cap.max_recv_wr) {
            st = ENOMEM;
            break;
        }
        struct vm_rwr *r = &q->rq[q->rq_tail % q->cap.max_recv_wr];
        uint64_t total;
        r->wr_id = wr->wr_id;
        r->nsge = wr->num_sge;
        vm_sge_copy(r->sge, wr->sg_list, wr->num_sge, &total);
        q->rq_tail++;
    }
    if (st)
        *bad = wr;
    pthread_mutex_unlock(&vm.mu);
    return st;
}

int verbs_model_inject(struct ibv_qp *qp, enum verbs_model_fault fault, uint64_t arg)
{
    pthread_mutex_lock(&vm.mu);
    struct vm_qp *q = vm.qps;
    while (q && &q->qp != qp)
        q = q->next;
    int st = 0;
    if (!q)
        st = EINVAL;
    else if (fault == VERBS_FAULT_QP_ERROR_AFTER)
        q->fault_err_after = q->bytes_in + (arg ? arg : 1);
    else if (fault == VERBS_FAULT_BAD_RKEY)
        q->fault_bad_rkey = 1;
    else
        st = EINVAL;
    pthread_mutex_unlock(&vm.mu);
    return st;
}

/* ---- the table ---- */

const struct verbs_api vm_api = {
    .name = "model",
    .get_device_list = vm_get_device_list,
    .free_device_list = vm_free_device_list,
    .get_device_name = vm_get_device_name,
    .open_device = vm_open_device,
    .close_device = vm_close_device,
    .query_port = vm_query_port,
    .query_gid = vm_query_gid,
    .alloc_pd = vm_alloc_pd,
    .dealloc_pd = vm_dealloc_pd,
    .reg_mr = vm_reg_mr,
    .dereg_mr = vm_dereg_mr,
    .create_comp_channel = vm_create_comp_channel,
    .destroy_comp_channel = vm_destroy_comp_channel,
    .create_cq = vm_create_cq,
    .destroy_cq = vm_destroy_cq,
    .req_notify_cq = vm_req_notify_cq,
    .get_cq_event = vm_get_cq_event,
    .ack_cq_events = vm_ack_cq_events,
    .poll_cq = vm_poll_cq,
    .post_send = vm_post_send,
    .post_recv = vm_post_recv,
    .modify_qp = vm_modify_qp,
    .query_qp = vm_query_qp,
    .wc_status_str = ibv_wc_status_str, /* pure string tables: no device involved */
    .create_event_channel = vm_rdma_create_event_channel,
    .destroy_event_channel = vm_rdma_destroy_event_channel,
    .create_id = vm_rdma_create_id,
    .destroy_id = vm_rdma_destroy_id,
    .bind_addr = vm_rdma_bind_addr,
    .listen = vm_rdma_listen,
    .resolve_addr = vm_rdma_resolve_addr,
    .resolve_route = vm_rdma_resolve_route,
    .create_qp = vm_rdma_create_qp,
    .destroy_qp = vm_rdma_destroy_qp,
    .connect = vm_rdma_connect,
    .accept = vm_rdma_accept,
    .reject = vm_rdma_reject,
    .disconnect = vm_rdma_disconnect,
    .get_cm_event = vm_rdma_get_cm_event,
    .ack_cm_event = vm_rdma_ack_cm_event,
    .event_str = rdma_event_str,
};

const struct verbs_api *verbs_model_api(const char *dir, char *why, size_t whylen)
{
    /* room for "/255.255.255.255:65535" in a Unix socket name */
    if (strlen(dir) + 23 > sizeof(((struct vm_cmid *)0)->path)) {
        snprintf(why, whylen, "PRIDE_VERBS_MODEL=%s: the directory's path is too long to name "
                              "Unix sockets in it (keep it under 85 characters)", dir);
        return NULL;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "PRIDE_VERBS_MODEL=%s: cannot create the directory: %s", dir,
                 strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(dir, W_OK | X_OK) != 0) {
        snprintf(why, whylen, "PRIDE_VERBS_MODEL=%s is not a writable directory", dir);
        return NULL;
    }
    pthread_mutex_lock(&vm_life);
    int busy = vm.users > 0 && strcmp(vm.dir, dir) != 0;
    if (!busy)
        snprintf(vm.dir, sizeof vm.dir, "%s", dir);
    pthread_mutex_unlock(&vm_life);
    if (busy) {
        snprintf(why, whylen, "PRIDE_VERBS_MODEL=%s: this process already runs the model on %s",
                 dir, vm.dir);
        return NULL;
    }
    return &vm_api;
}
