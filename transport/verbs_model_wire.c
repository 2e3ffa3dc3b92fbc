/*
 * The software model's NIC: one thread per process that moves packets between the
 * processes of the emulated fabric, as an RC transport engine would.
 *
 * Requester: work requests leave a QP's send queue in order, cut into packets of at
 * most VM_MTU bytes that carry the message number, the epoch, the offset, and for
 * RDMA writes the remote address and rkey; the payload is read from registered
 * memory (lkey and bounds checked per packet) when the packet is built, not when the
 * request is posted. A request completes when the responder acknowledges its message
 * (acknowledgements are cumulative). An RNR NAK sends the requester back to that
 * message after a fixed delay, with a new epoch, up to the QP's rnr_retry (7 means
 * forever), then IBV_WC_RNR_RETRY_EXC_ERR. Remote access, invalid request and remote
 * operation NAKs complete the request with that status and put the QP in ERR.
 *
 * Responder: the first packet of a message is checked (rkey exists in the responder's
 * process, same PD, REMOTE_WRITE on the region and the QP, range inside the region;
 * a receive WQE for sends and writes with immediate, else RNR; a send that does not
 * fit the WQE is IBV_WC_LOC_LEN_ERR here and an invalid-request NAK there), every
 * packet is placed, and the last one produces the receive completion (with the
 * immediate for IBV_WC_RECV_RDMA_WITH_IMM) and the ACK. A responder QP that is not
 * in RTR/RTS drops packets and answers the last packet of each message with
 * VM_NAK_DROPPED, which the requester reports as IBV_WC_RETRY_EXC_ERR: on a real
 * fabric the requester's retry timer would expire instead, much later.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "verbs_model.h"

#define VM_PKT_MAX (sizeof(struct vm_pkt) + VM_MTU)
#define VM_BUDGET 32 /* packets per connection and direction per round */

static int64_t vm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- connections ---- */

struct vm_conn *vm_conn_new(int fd, struct vm_cmid *id, struct vm_cmid *listen)
{
    struct vm_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->tx = malloc(VM_PKT_MAX);
    c->rx = malloc(VM_PKT_MAX);
    if (!c->tx || !c->rx) {
        free(c->tx);
        free(c->rx);
        free(c);
        return NULL;
    }
    c->fd = fd;
    c->id = id;
    c->listen = listen;
    c->next = vm.conns;
    vm.conns = c;
    vm_kick();
    return c;
}

int vm_conn_ctl(struct vm_conn *c, const struct vm_pkt *h, const void *payload, size_t len,
                int close_after)
{
    struct vm_ctl *k = malloc(sizeof *k + sizeof *h + len);
    if (!k)
        return ENOMEM;
    struct vm_pkt hh = *h;
    hh.len = (uint32_t)len;
    if (h->type != VM_PKT_DATA && h->type != VM_PKT_ACK && h->type != VM_PKT_NAK)
        hh.pdlen = (uint8_t)len;
    k->next = NULL;
    k->len = sizeof hh + len;
    k->close_after = close_after;
    memcpy(k->data, &hh, sizeof hh);
    if (len)
        memcpy(k->data + sizeof hh, payload, len);
    if (c->ctl_tail)
        c->ctl_tail->next = k;
    else
        c->ctl_head = k;
    c->ctl_tail = k;
    vm_kick();
    return 0;
}

/* Write queued control packets: 0 all written, 1 the socket is full, 2 closed. */
static int vm_write_ctl(struct vm_conn *c)
{
    while (c->ctl_head) {
        struct vm_ctl *k = c->ctl_head;
        ssize_t n = send(c->fd, k->data, k->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 1 : 2;
        c->ctl_head = k->next;
        if (!c->ctl_head)
            c->ctl_tail = NULL;
        int close_after = k->close_after;
        free(k);
        if (close_after) {
            shutdown(c->fd, SHUT_RDWR);
            c->closed = 1;
            return 2;
        }
    }
    return 0;
}

void vm_conn_free(struct vm_conn *c)
{
    if (!c->closed)
        vm_write_ctl(c); /* a last DREQ or REJ, if the socket takes it */
    /* shutdown first: the NIC thread's poll() holds the socket open past close() */
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    struct vm_conn **pp = &vm.conns;
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    for (struct vm_ctl *k = c->ctl_head, *n; k; k = n) {
        n = k->next;
        free(k);
    }
    if (c->id && c->id->conn == c)
        c->id->conn = NULL;
    free(c->tx);
    free(c->rx);
    free(c);
    vm.gen++;
    vm_kick();
}

static void vm_conn_eof(struct vm_conn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    shutdown(c->fd, SHUT_RDWR);
    vm_cm_lost(c);
}

static struct vm_qp *vm_conn_qp(struct vm_conn *c)
{
    return c->id && c->id->id.qp ? (struct vm_qp *)c->id->id.qp : NULL;
}

static void vm_reply(struct vm_conn *c, enum vm_pkt_type type, int code, const struct vm_pkt *h)
{
    struct vm_pkt r = {.type = (uint8_t)type, .op = (uint8_t)code, .msg = h->msg,
                       .epoch = h->epoch};
    vm_conn_ctl(c, &r, NULL, 0, 0);
}

/* ---- memory access with the checks a NIC makes ---- */

static int vm_in_mr(const struct vm_mr *m, uint64_t addr, uint64_t len)
{
    uint64_t lo = (uintptr_t)m->mr.addr, hi = lo + m->mr.length;
    return addr >= lo && addr <= hi && len <= hi - addr;
}

/* Copy len bytes between message offset off of an SGE list and buf; each piece must
   lie in a region of the QP's PD with the lkey given (writable if into the SGEs). */
static int vm_sge_io(struct vm_qp *q, const struct vm_sge *sge, int nsge, uint64_t off,
                     char *buf, uint64_t len, int into_sges)
{
    for (int i = 0; i < nsge && len > 0; i++) {
        const struct vm_sge *s = &sge[i];
        if (off >= s->len) {
            off -= s->len;
            continue;
        }
        uint64_t n = s->len - off;
        if (n > len)
            n = len;
        struct vm_mr *m = vm_mr_by_key(s->lkey, 0);
        if (!m || m->mr.pd != q->qp.pd || !vm_in_mr(m, s->addr + off, n) ||
            (into_sges && !(m->access & IBV_ACCESS_LOCAL_WRITE)))
            return -1;
        char *mem = (char *)(uintptr_t)(s->addr + off);
        if (into_sges)
            memcpy(mem, buf, n);
        else
            memcpy(buf, mem, n);
        buf += n;
        len -= n;
        off = 0;
    }
    return len ? -1 : 0;
}

/* ---- responder ---- */

static void vm_recv_done(struct vm_qp *q, enum ibv_wc_status st, int write, int imm)
{
    struct ibv_wc wc = {.wr_id = q->in_wqe.wr_id,
                        .status = st,
                        .opcode = write ? IBV_WC_RECV_RDMA_WITH_IMM : IBV_WC_RECV,
                        .byte_len = (uint32_t)q->in_total,
                        .qp_num = q->qp.qp_num,
                        .wc_flags = imm ? IBV_WC_WITH_IMM : 0,
                        .imm_data = imm ? q->in_imm : 0};
    vm_cq_push((struct vm_cq *)q->qp.recv_cq, &wc);
    q->in_has_wqe = 0;
}

/* The responder fails the message: NAK it and put the QP in ERR. */
static void vm_resp_fail(struct vm_conn *c, struct vm_qp *q, const struct vm_pkt *h, int nak)
{
    vm_reply(c, VM_PKT_NAK, nak, h);
    vm_qp_error(q, IBV_WC_WR_FLUSH_ERR);
}

/* First packet of a message: check it and take what it needs. 0 to go on. */
static int vm_resp_start(struct vm_conn *c, struct vm_qp *q, const struct vm_pkt *h)
{
    int write = h->op == VM_OP_WRITE || h->op == VM_OP_WRITE_IMM;
    int imm = h->op == VM_OP_SEND_IMM || h->op == VM_OP_WRITE_IMM;
    if (q->in_msg || h->msg != q->expect)
        return -1; /* cannot happen on an ordered socket; dropped like a duplicate */
    q->in_op = h->op;
    q->in_total = h->total;
    q->in_got = 0;
    q->in_imm = h->imm;
    q->in_mr = NULL;
    q->in_has_wqe = 0;
    if (write) {
        int bad = q->fault_bad_rkey;
        q->fault_bad_rkey = 0;
        struct vm_mr *m = bad ? NULL : vm_mr_by_key(h->rkey, 1);
        if (!m || m->mr.pd != q->qp.pd || !(m->access & IBV_ACCESS_REMOTE_WRITE) ||
            !(q->access & IBV_ACCESS_REMOTE_WRITE) || !vm_in_mr(m, h->raddr, h->total)) {
            vm_resp_fail(c, q, h, VM_NAK_ACCESS);
            return -1;
        }
        q->in_mr = m;
        q->in_raddr = h->raddr;
        q->in_rkey = h->rkey;
    }
    if (!write || imm) {
        if (q->rq_head == q->rq_tail) {
            vm_reply(c, VM_PKT_NAK, VM_NAK_RNR, h);
            q->min_epoch = h->epoch + 1; /* what follows was sent before the NAK */
            return -1;
        }
        q->in_wqe = q->rq[q->rq_head % q->cap.max_recv_wr];
        q->rq_head++;
        q->in_has_wqe = 1;
        uint64_t room = 0;
        for (int i = 0; i < q->in_wqe.nsge; i++)
            room += q->in_wqe.sge[i].len;
        if (!write && h->total > room) {
            vm_recv_done(q, IBV_WC_LOC_LEN_ERR, 0, 0);
            vm_resp_fail(c, q, h, VM_NAK_INVALID);
            return -1;
        }
    }
    q->in_msg = 1;
    return 0;
}

static void vm_data(struct vm_conn *c, const struct vm_pkt *h, char *payload)
{
    struct vm_qp *q = vm_conn_qp(c);
    if (!q || (q->qp.state != IBV_QPS_RTR && q->qp.state != IBV_QPS_RTS)) {
        if (h->flags & VM_F_LAST)
            vm_reply(c, VM_PKT_NAK, VM_NAK_DROPPED, h);
        return;
    }
    if (h->epoch < q->min_epoch)
        return;
    if ((h->flags & VM_F_FIRST) && vm_resp_start(c, q, h) != 0)
        return;
    if (!q->in_msg || h->msg != q->expect || h->offset != q->in_got ||
        h->len > q->in_total - q->in_got)
        return;
    int write = q->in_op == VM_OP_WRITE || q->in_op == VM_OP_WRITE_IMM;
    int imm = q->in_op == VM_OP_SEND_IMM || q->in_op == VM_OP_WRITE_IMM;
    if (write) {
        if (vm_mr_by_key(q->in_rkey, 1) != q->in_mr) { /* deregistered mid-message */
            vm_resp_fail(c, q, h, VM_NAK_ACCESS);
            return;
        }
        if (h->len)
            memcpy((char *)(uintptr_t)(q->in_raddr + h->offset), payload, h->len);
    } else if (vm_sge_io(q, q->in_wqe.sge, q->in_wqe.nsge, h->offset, payload, h->len, 1) != 0) {
        vm_recv_done(q, IBV_WC_LOC_PROT_ERR, 0, 0);
        vm_resp_fail(c, q, h, VM_NAK_OP);
        return;
    }
    q->in_got += h->len;
    q->bytes_in += h->len;
    if (q->fault_err_after && q->bytes_in >= q->fault_err_after) {
        q->fault_err_after = 0;
        vm_qp_error(q, IBV_WC_WR_FLUSH_ERR);
        if (h->flags & VM_F_LAST)
            vm_reply(c, VM_PKT_NAK, VM_NAK_DROPPED, h);
        return;
    }
    if (!(h->flags & VM_F_LAST))
        return;
    if (q->in_got != q->in_total) {
        vm_resp_fail(c, q, h, VM_NAK_INVALID);
        return;
    }
    if (q->in_has_wqe)
        vm_recv_done(q, IBV_WC_SUCCESS, write, imm);
    q->in_msg = 0;
    q->expect++;
    vm_reply(c, VM_PKT_ACK, 0, h);
}

/* ---- requester ---- */

static void vm_acked(struct vm_conn *c, const struct vm_pkt *h)
{
    struct vm_qp *q = vm_conn_qp(c);
    if (!q || q->qp.state != IBV_QPS_RTS)
        return;
    while (q->sq_head < q->sq_tx) {
        struct vm_swr *w = &q->sq[q->sq_head % q->cap.max_send_wr];
        if (w->msg > h->msg)
            break;
        if (w->signaled || q->sq_sig_all) {
            struct ibv_wc wc = {.wr_id = w->wr_id, .status = IBV_WC_SUCCESS,
                                .qp_num = q->qp.qp_num, .byte_len = (uint32_t)w->total};
            wc.opcode = (w->opcode == IBV_WR_RDMA_WRITE || w->opcode == IBV_WR_RDMA_WRITE_WITH_IMM)
                            ? IBV_WC_RDMA_WRITE
                            : IBV_WC_SEND;
            vm_cq_push((struct vm_cq *)q->qp.send_cq, &wc);
        }
        free(w->inl);
        w->inl = NULL;
        q->sq_head++;
    }
}

static void vm_naked(struct vm_conn *c, const struct vm_pkt *h)
{
    struct vm_qp *q = vm_conn_qp(c);
    if (!q || q->qp.state != IBV_QPS_RTS || q->sq_head == q->sq_tail)
        return;
    struct vm_swr *w = &q->sq[q->sq_head % q->cap.max_send_wr];
    if (w->msg != h->msg)
        return;
    switch (h->op) {
    case VM_NAK_RNR:
        if (h->epoch != q->epoch)
            return;
        if (q->rnr_retry != 7 && w->rnr_left-- <= 0) {
            vm_qp_error(q, IBV_WC_RNR_RETRY_EXC_ERR);
            return;
        }
        q->epoch++;
        q->sq_tx = q->sq_head;
        q->tx_off = 0;
        q->rnr_until_ns = vm_now_ns() + VM_RNR_DELAY_NS;
        return;
    case VM_NAK_ACCESS:
        vm_qp_error(q, IBV_WC_REM_ACCESS_ERR);
        return;
    case VM_NAK_INVALID:
        vm_qp_error(q, IBV_WC_REM_INV_REQ_ERR);
        return;
    case VM_NAK_OP:
        vm_qp_error(q, IBV_WC_REM_OP_ERR);
        return;
    default:
        vm_qp_error(q, IBV_WC_RETRY_EXC_ERR);
        return;
    }
}

static uint8_t vm_op_of(int opcode)
{
    switch (opcode) {
    case IBV_WR_SEND_WITH_IMM:
        return VM_OP_SEND_IMM;
    case IBV_WR_RDMA_WRITE:
        return VM_OP_WRITE;
    case IBV_WR_RDMA_WRITE_WITH_IMM:
        return VM_OP_WRITE_IMM;
    default:
        return VM_OP_SEND;
    }
}

/* Transmit packets of the QP's send queue. Returns 1 when the round's budget ran out
   with more to send, 2 when the socket broke, else 0. */
static int vm_write_data(struct vm_conn *c)
{
    struct vm_qp *q = vm_conn_qp(c);
    for (int budget = VM_BUDGET; budget > 0; budget--) {
        if (!q || q->qp.state != IBV_QPS_RTS) {
            c->tx_full = 0;
            return 0;
        }
        struct vm_swr *w = q->sq_tx < q->sq_tail ? &q->sq[q->sq_tx % q->cap.max_send_wr] : NULL;
        if (c->tx_full) {
            if (!w || c->tx_epoch != q->epoch || c->tx_msg != w->msg || c->tx_off != q->tx_off) {
                c->tx_full = 0; /* the requester went back or failed since it was built */
                continue;
            }
            ssize_t n = send(c->fd, c->tx, c->tx_len, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    c->blocked = 1;
                    return 0;
                }
                return 2;
            }
            c->tx_full = 0;
            q->tx_off += c->tx_len - sizeof(struct vm_pkt);
            if (q->tx_off >= w->total) {
                q->sq_tx++;
                q->tx_off = 0;
            }
            continue;
        }
        if (!w || vm_now_ns() < q->rnr_until_ns)
            return 0;
        if (w->total > VM_MAX_MSG) {
            vm_qp_local_error(q, q->sq_tx, IBV_WC_LOC_LEN_ERR);
            return 0;
        }
        uint64_t len = w->total - q->tx_off;
        if (len > VM_MTU)
            len = VM_MTU;
        struct vm_pkt *h = (struct vm_pkt *)c->tx;
        *h = (struct vm_pkt){.type = VM_PKT_DATA,
                             .op = vm_op_of(w->opcode),
                             .flags = (uint8_t)((q->tx_off == 0 ? VM_F_FIRST : 0) |
                                                (q->tx_off + len == w->total ? VM_F_LAST : 0)),
                             .epoch = q->epoch,
                             .msg = w->msg,
                             .total = w->total,
                             .offset = q->tx_off,
                             .raddr = w->raddr,
                             .rkey = w->rkey,
                             .imm = w->imm,
                             .len = (uint32_t)len};
        char *body = c->tx + sizeof *h;
        int bad = 0;
        if (w->inl)
            memcpy(body, w->inl + q->tx_off, len);
        else
            bad = vm_sge_io(q, w->sge, w->nsge, q->tx_off, body, len, 0) != 0;
        if (bad) {
            vm_qp_local_error(q, q->sq_tx, IBV_WC_LOC_PROT_ERR);
            return 0;
        }
        c->tx_full = 1;
        c->tx_len = sizeof *h + len;
        c->tx_msg = w->msg;
        c->tx_off = q->tx_off;
        c->tx_epoch = q->epoch;
    }
    return 1;
}

/* ---- the thread ---- */

static void vm_conn_read(struct vm_conn *c)
{
    for (int k = 0; k < VM_BUDGET && !c->closed; k++) {
        ssize_t n = recv(c->fd, c->rx, VM_PKT_MAX, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        struct vm_pkt *h = (struct vm_pkt *)c->rx;
        if (n <= 0 || (size_t)n < sizeof *h || h->len != (size_t)n - sizeof *h) {
            vm_conn_eof(c);
            return;
        }
        char *payload = c->rx + sizeof *h;
        if (h->type == VM_PKT_DATA)
            vm_data(c, h, payload);
        else if (h->type == VM_PKT_ACK)
            vm_acked(c, h);
        else if (h->type == VM_PKT_NAK)
            vm_naked(c, h);
        else
            vm_cm_packet(c, h, payload);
    }
}

/* Returns 1 if the connection has more to send right away. */
static int vm_conn_write(struct vm_conn *c)
{
    if (c->closed || c->wdead)
        return 0;
    c->blocked = 0;
    int r = vm_write_ctl(c);
    if (r == 1) {
        c->blocked = 1;
        return 0;
    }
    if (r == 0)
        r = vm_write_data(c);
    if (r == 2 && !c->closed) {
        /* The peer is gone, but what it sent before may still wait to be read (a
           NAK, a DREQ): the read side reports the end once it has taken all that. */
        c->wdead = 1;
        c->blocked = 0;
        return 0;
    }
    return r == 1;
}

static void vm_accept_all(struct vm_cmid *l)
{
    for (;;) {
        int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (!vm_conn_new(fd, NULL, l))
            close(fd);
    }
}

/* Milliseconds until the earliest RNR back-off ends, or -1. */
static int vm_timer_ms(void)
{
    int64_t now = vm_now_ns(), best = -1;
    for (struct vm_qp *q = vm.qps; q; q = q->next) {
        if (q->qp.state != IBV_QPS_RTS || q->sq_tx == q->sq_tail || q->rnr_until_ns <= now)
            continue;
        int64_t left = q->rnr_until_ns - now;
        if (best < 0 || left < best)
            best = left;
    }
    return best < 0 ? -1 : (int)((best + 999999) / 1000000);
}

static void *vm_nic_main(void *arg)
{
    (void)arg;
    struct pollfd *pf = NULL;
    void **tag = NULL;
    size_t cap = 0;
    int busy = 0;
    pthread_mutex_lock(&vm.mu);
    while (!vm.stop) {
        size_t need = 1;
        for (struct vm_cmid *id = vm.ids; id; id = id->next)
            need++;
        for (struct vm_conn *c = vm.conns; c; c = c->next)
            need++;
        if (need > cap) {
            struct pollfd *npf = realloc(pf, need * sizeof *pf);
            if (npf)
                pf = npf;
            void **ntag = npf ? realloc(tag, need * sizeof *tag) : NULL;
            if (!npf || !ntag) { /* out of memory: keep the old arrays, retry shortly */
                pthread_mutex_unlock(&vm.mu);
                poll(NULL, 0, 10);
                pthread_mutex_lock(&vm.mu);
                continue;
            }
            tag = ntag;
            cap = need;
        }
        size_t n = 0;
        pf[n] = (struct pollfd){vm.kickfd, POLLIN, 0};
        tag[n++] = NULL;
        for (struct vm_cmid *id = vm.ids; id; id = id->next)
            if (id->state == VM_CM_LISTEN) {
                pf[n] = (struct pollfd){id->lfd, POLLIN, 0};
                tag[n++] = id;
            }
        size_t first_conn = n;
        for (struct vm_conn *c = vm.conns; c; c = c->next)
            if (!c->closed) {
                pf[n] = (struct pollfd){c->fd, (short)(POLLIN | (c->blocked ? POLLOUT : 0)), 0};
                tag[n++] = c;
            }
        int timeout = busy ? 0 : vm_timer_ms();
        uint64_t gen = vm.gen;
        pthread_mutex_unlock(&vm.mu);
        poll(pf, n, timeout);
        pthread_mutex_lock(&vm.mu);
        uint64_t v;
        while (read(vm.kickfd, &v, sizeof v) > 0)
            ;
        for (size_t i = 1; i < n && gen == vm.gen; i++) {
            if (!pf[i].revents)
                continue;
            if (i < first_conn)
                vm_accept_all(tag[i]);
            else if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
                vm_conn_read(tag[i]);
        }
        busy = 0;
        for (struct vm_conn *c = vm.conns; c; c = c->next)
            busy |= vm_conn_write(c);
        for (struct vm_conn *c = vm.conns, *nx; c; c = nx) {
            nx = c->next;
            if (c->closed && !c->id)
                vm_conn_free(c);
        }
    }
    pthread_mutex_unlock(&vm.mu);
    free(pf);
    free(tag);
    return NULL;
}

int vm_nic_start(void)
{
    vm.stop = 0;
    return pthread_create(&vm.nic, NULL, vm_nic_main, NULL);
}

void vm_nic_stop(void)
{
    pthread_mutex_lock(&vm.mu);
    vm.stop = 1;
    vm_kick();
    pthread_mutex_unlock(&vm.mu);
    pthread_join(vm.nic, NULL);
}
