/*
 * The verbs backend's data path (protocol in verbs.h): eager messages through
 * registered bounce buffers, RTS/CTS rendezvous with RDMA WRITE WITH IMMEDIATE into
 * the receiver's buffer, credits, matching by (peer, seq, tag) with the same checks
 * as tcp (a frame whose meta or length differs ends the call with MISMATCH).
 *
 * Progress, as in tcp, is made by the waiting threads under one mutex: one polls the
 * completion channel's fd, the rdmacm event channel's fd and an eventfd for wake(),
 * the others sleep on a condition variable. The CQ is drained, re-armed with
 * ibv_req_notify_cq and drained again before sleeping, so a completion that lands
 * between the last poll and the arming still wakes the poller; nothing spins.
 *
 * Every verbs and rdmacm call goes through tp->api (verbs_api.h), so this file runs
 * unchanged on a NIC or on the software model.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "verbs.h"

static int tp_fail(struct pride_tp *tp, int st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int tp_fail(struct pride_tp *tp, int st, const char *fmt, ...)
{
    pride_context_t *ctx = tp->ctx;
    if (pride_ctx_status(ctx) == PRIDE_OK) {
        char msg[900];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        pride_error(ctx, st, "rank %d: %s", tp->rank, msg);
    }
    st = pride_fail(ctx, st);
    pthread_cond_broadcast(&tp->cv);
    return st;
}

static void complete(struct pride_xfer *x, int st)
{
    x->status = st;
    x->complete = 1;
}

static uint64_t wr_id(int kind, int peer, uint32_t idx)
{
    return (uint64_t)kind << 56 | (uint64_t)(uint32_t)peer << 32 | idx;
}

/* ---- a peer that goes away ---- */

static int peer_owes(const struct verbs_peer *p)
{
    return p->posted_head || p->op_head || p->rdv_active > 0;
}

/* The connection to p is gone. A peer that leaves with nothing owed either way has
   finished (pride_finalize); only a later post to or from it fails. */
static void peer_lost(struct pride_tp *tp, struct verbs_peer *p, const char *what)
{
    int was_dead = p->dead;
    p->dead = 1;
    if (was_dead || tp->detached || !peer_owes(p))
        return;
    tp_fail(tp, PRIDE_ERR_PEER, "rank %d %s (did it die or call pride_finalize early?)", p->rank,
            what);
}

static int peer_gone(struct pride_tp *tp, const struct verbs_peer *p, const char *verb)
{
    return tp_fail(tp, PRIDE_ERR_PEER, "cannot %s rank %d: its connection is gone", verb, p->rank);
}

static void peer_garbage(struct pride_tp *tp, struct verbs_peer *p, const char *why)
{
    p->dead = 1;
    tp_fail(tp, PRIDE_ERR_PEER, "rank %d sent a malformed message: %s", p->rank, why);
}

/* ---- sequence-number metas: catch a mismatch even before the receive is posted ---- */

static int meta_check(struct pride_tp *tp, int peer, const struct pride_meta *mine,
                      const struct pride_frame_hdr *h)
{
    char why[400];
    if (pride_meta_compare(mine, &h->meta, why, sizeof why) == PRIDE_OK)
        return PRIDE_OK;
    char theirs[160];
    pride_meta_describe(&h->meta, theirs, sizeof theirs);
    return tp_fail(tp, PRIDE_ERR_MISMATCH, "collective #%llu: %s (rank %d sent a frame of %s)",
                   (unsigned long long)h->seq, why, peer, theirs);
}

static int seq_note(struct pride_tp *tp, const struct pride_xfer *x)
{
    struct verbs_seqslot *s = &tp->seqs[x->seq % VERBS_SEQ_SLOTS];
    if (s->valid && s->seq == x->seq)
        return PRIDE_OK;
    s->valid = 1;
    s->seq = x->seq;
    s->meta = x->meta;
    for (int j = 0; j < tp->nranks; j++)
        for (struct verbs_unexp *u = tp->peers[j].ux_head; u; u = u->next)
            if (u->hdr.seq == x->seq && meta_check(tp, j, &x->meta, &u->hdr) != PRIDE_OK)
                return PRIDE_ERR_MISMATCH;
    return PRIDE_OK;
}

static const struct pride_meta *seq_meta(struct pride_tp *tp, uint64_t seq)
{
    struct verbs_seqslot *s = &tp->seqs[seq % VERBS_SEQ_SLOTS];
    return s->valid && s->seq == seq ? &s->meta : NULL;
}

/* ---- matching ---- */

static struct pride_xfer *posted_take(struct verbs_peer *p, uint64_t seq, uint32_t tag)
{
    struct pride_xfer **pp = &p->posted_head, *prev = NULL;
    for (struct pride_xfer *x = p->posted_head; x; prev = x, pp = &x->next, x = x->next) {
        if (x->seq != seq || x->tag != tag)
            continue;
        *pp = x->next;
        if (p->posted_tail == x)
            p->posted_tail = prev;
        x->next = NULL;
        return x;
    }
    return NULL;
}

static void ux_append(struct verbs_peer *p, struct verbs_unexp *u)
{
    u->next = NULL;
    if (p->ux_tail)
        p->ux_tail->next = u;
    else
        p->ux_head = u;
    p->ux_tail = u;
}

static struct verbs_unexp *ux_take(struct verbs_peer *p, uint64_t seq, uint32_t tag)
{
    struct verbs_unexp **pp = &p->ux_head, *prev = NULL;
    for (struct verbs_unexp *u = p->ux_head; u; prev = u, pp = &u->next, u = u->next) {
        if (u->hdr.seq != seq || u->hdr.tag != tag)
            continue;
        *pp = u->next;
        if (p->ux_tail == u)
            p->ux_tail = prev;
        return u;
    }
    return NULL;
}

static int match_check(struct pride_tp *tp, int peer, struct pride_xfer *x,
                       const struct pride_frame_hdr *h)
{
    if (meta_check(tp, peer, &x->meta, h) != PRIDE_OK)
        return PRIDE_ERR_MISMATCH;
    if (h->len != x->len) {
        char m[160];
        pride_meta_describe(&x->meta, m, sizeof m);
        return tp_fail(tp, PRIDE_ERR_MISMATCH,
                       "%s #%llu: rank %d sent %llu bytes for message %u, this rank expected %zu",
                       m, (unsigned long long)h->seq, peer, (unsigned long long)h->len,
                       (unsigned)h->tag, x->len);
    }
    return PRIDE_OK;
}

/* An unexpected frame for a receive that has come: queue a frame of its seq only if
   its meta agrees with the collective this rank is in (if it is in it yet). */
static struct verbs_unexp *ux_new(struct pride_tp *tp, struct verbs_peer *p,
                                  const struct pride_frame_hdr *h, const void *data)
{
    const struct pride_meta *m = seq_meta(tp, h->seq);
    if (m && meta_check(tp, p->rank, m, h) != PRIDE_OK)
        return NULL;
    struct verbs_unexp *u = calloc(1, sizeof *u);
    char *copy = data && h->len ? malloc(h->len) : NULL;
    if (!u || (data && h->len && !copy)) {
        free(u);
        free(copy);
        tp_fail(tp, PRIDE_ERR_NOMEM, "no memory for a %llu-byte frame from rank %d that came "
                "before its receive was posted", (unsigned long long)h->len, p->rank);
        return NULL;
    }
    u->hdr = *h;
    if (copy)
        memcpy(copy, data, h->len);
    u->data = copy;
    if (data) { /* an RTS leaves its payload with the sender: nothing is buffered */
        atomic_fetch_add(&tp->ctx->unexpected_messages, 1);
        atomic_fetch_add(&tp->ctx->unexpected_bytes, h->len);
    }
    ux_append(p, u);
    return u;
}

/* ---- rendezvous slots ---- */

static int rdv_new(struct pride_tp *tp, int peer, struct pride_xfer *x, int state, uint32_t *out)
{
    uint32_t i = 0;
    while (i < tp->nrdv && tp->rdv[i].used)
        i++;
    if (i == tp->nrdv) {
        uint32_t n = tp->nrdv ? tp->nrdv * 2 : 16;
        if (n > 65536)
            return tp_fail(tp, PRIDE_ERR_NOMEM, "more than 65536 rendezvous transfers at once");
        struct verbs_rdv *r = realloc(tp->rdv, n * sizeof *r);
        if (!r)
            return tp_fail(tp, PRIDE_ERR_NOMEM, "no memory for rendezvous state");
        memset(r + tp->nrdv, 0, (n - tp->nrdv) * sizeof *r);
        tp->rdv = r;
        tp->nrdv = n;
    }
    struct verbs_rdv *r = &tp->rdv[i];
    uint16_t gen = (uint16_t)(r->gen + 1);
    memset(r, 0, sizeof *r);
    r->gen = gen;
    r->used = 1;
    r->peer = peer;
    r->x = x;
    r->state = state;
    tp->peers[peer].rdv_active++;
    *out = i;
    return PRIDE_OK;
}

static uint32_t rdv_cookie(struct pride_tp *tp, uint32_t i)
{
    return (uint32_t)tp->rdv[i].gen << 16 | i;
}

/* The slot a cookie from peer names, in state; NULL if it names none. */
static struct verbs_rdv *rdv_find(struct pride_tp *tp, uint32_t cookie, int peer, int state)
{
    uint32_t i = cookie & 0xffff;
    if (i >= tp->nrdv)
        return NULL;
    struct verbs_rdv *r = &tp->rdv[i];
    if (!r->used || r->gen != cookie >> 16 || r->peer != peer || r->state != state)
        return NULL;
    return r;
}

static void rdv_free(struct pride_tp *tp, struct verbs_rdv *r)
{
    if (r->mr)
        verbs_mr_put(&tp->mrs, r->mr);
    tp->peers[r->peer].rdv_active--;
    r->used = 0;
    r->mr = NULL;
    r->x = NULL;
}

/* ---- sending ---- */

/* Room for one more message to p: a credit (the last one only for CREDIT and ERROR
   messages), a bounce buffer, a send queue slot. */
static int can_send(const struct verbs_peer *p, int data)
{
    return p->credits >= (data ? 2 : 1) && p->nsfree > 0 && p->sq_used < VERBS_SQ_DEPTH;
}

/* Post one message (wire header w, payload) on p's QP; the caller checked can_send. */
static int send_msg(struct pride_tp *tp, struct verbs_peer *p, struct verbs_wire *w,
                    const void *payload, size_t len)
{
    int idx = p->sfree[--p->nsfree];
    char *buf = p->sbuf + (size_t)idx * VERBS_BUF_SIZE;
    w->magic = VERBS_MAGIC;
    w->credits = (uint16_t)p->to_return;
    memcpy(buf, w, sizeof *w);
    if (len)
        memcpy(buf + sizeof *w, payload, len);
    struct ibv_sge sge = {(uintptr_t)buf, (uint32_t)(sizeof *w + len), tp->slab_mr->lkey};
    struct ibv_send_wr wr = {.wr_id = wr_id(VERBS_WR_SEND, p->rank, (uint32_t)idx),
                             .sg_list = &sge,
                             .num_sge = 1,
                             .opcode = IBV_WR_SEND,
                             .send_flags = IBV_SEND_SIGNALED},
                       *bad;
    int e = tp->api->post_send(p->qp, &wr, &bad);
    if (e) {
        p->sfree[p->nsfree++] = idx;
        return tp_fail(tp, PRIDE_ERR_TRANSPORT, "ibv_post_send of a message to rank %d: %s",
                       p->rank, strerror(e));
    }
    p->to_return = 0;
    p->credits--;
    p->sq_used++;
    atomic_fetch_add(&tp->ctx->header_bytes_sent, sizeof *w);
    return PRIDE_OK;
}

/* Post as much of a rendezvous write as the queue takes; 1 when all is posted. */
static int post_write(struct pride_tp *tp, struct verbs_peer *p, uint32_t slot)
{
    struct verbs_rdv *r = &tp->rdv[slot];
    struct pride_xfer *x = r->x;
    while (r->posted < x->len) {
        size_t chunk = x->len - r->posted;
        if (chunk > tp->max_msg)
            chunk = tp->max_msg;
        int last = r->posted + chunk == x->len;
        if (p->sq_used >= VERBS_SQ_DEPTH || (last && p->credits < 2))
            return 0;
        struct ibv_sge sge = {(uintptr_t)x->buf + r->posted, (uint32_t)chunk, r->mr->mr->lkey};
        struct ibv_send_wr wr = {
            .wr_id = wr_id(last ? VERBS_WR_WRITE_LAST : VERBS_WR_WRITE, p->rank, slot),
            .sg_list = &sge,
            .num_sge = 1,
            .opcode = last ? IBV_WR_RDMA_WRITE_WITH_IMM : IBV_WR_RDMA_WRITE,
            .send_flags = IBV_SEND_SIGNALED,
            .imm_data = last ? htonl(r->rimm) : 0};
        wr.wr.rdma.remote_addr = r->raddr + r->posted;
        wr.wr.rdma.rkey = r->rkey;
        struct ibv_send_wr *bad;
        int e = tp->api->post_send(p->qp, &wr, &bad);
        if (e)
            return tp_fail(tp, PRIDE_ERR_TRANSPORT, "ibv_post_send of an RDMA write to rank %d: %s",
                           p->rank, strerror(e));
        p->sq_used++;
        if (last)
            p->credits--;
        r->posted += chunk;
    }
    return 1;
}

/* Try to send op: 1 sent, 0 not yet (no room), negative on failure. */
static int op_try(struct pride_tp *tp, struct verbs_peer *p, const struct verbs_op *op)
{
    pride_context_t *ctx = tp->ctx;
    if (op->kind == VERBS_OP_WRITE)
        return post_write(tp, p, op->slot);
    if (!can_send(p, 1))
        return 0;
    struct verbs_wire w = {0};
    int st;
    if (op->kind == VERBS_OP_EAGER) {
        struct pride_xfer *x = op->x;
        w.type = VERBS_MSG_EAGER;
        w.hdr = x->hdr;
        st = send_msg(tp, p, &w, x->buf, x->len);
        if (st)
            return st;
        atomic_fetch_add(&ctx->bytes_sent, x->len);
        atomic_fetch_add(&ctx->messages_sent, 1);
        complete(x, PRIDE_OK);
        return 1;
    }
    struct verbs_rdv *r = &tp->rdv[op->slot];
    if (op->kind == VERBS_OP_RTS) {
        w.type = VERBS_MSG_RTS;
        w.cookie = rdv_cookie(tp, op->slot);
        w.hdr = r->x->hdr;
        r->state = VERBS_RDV_WAIT_CTS;
    } else {
        w.type = VERBS_MSG_CTS;
        w.cookie = r->cookie;
        w.rslot = rdv_cookie(tp, op->slot);
        w.raddr = (uintptr_t)r->x->buf;
        w.rkey = r->mr->mr->rkey;
        r->state = VERBS_RDV_WAIT_DATA;
    }
    st = send_msg(tp, p, &w, NULL, 0);
    return st ? st : 1;
}

/* Send what p's queue holds while there is room, then return credits if they piled
   up and nothing carried them. */
static void peer_flush(struct pride_tp *tp, struct verbs_peer *p)
{
    if (p->dead || !p->connected)
        return;
    while (p->op_head) {
        int r = op_try(tp, p, p->op_head);
        if (r < 0)
            return;
        if (r == 0) /* no room: the credits below may be what the peer needs to make some */
            break;
        struct verbs_op *op = p->op_head;
        p->op_head = op->next;
        if (!p->op_head)
            p->op_tail = NULL;
        free(op);
    }
    if (p->to_return >= VERBS_CREDIT_BATCH && can_send(p, 0)) {
        struct verbs_wire w = {.type = VERBS_MSG_CREDIT};
        send_msg(tp, p, &w, NULL, 0);
    }
}

/* Send now if nothing waits before it and there is room, else queue. */
static int op_post(struct pride_tp *tp, struct verbs_peer *p, int kind, struct pride_xfer *x,
                   uint32_t slot)
{
    if (p->dead)
        return peer_gone(tp, p, "send to");
    struct verbs_op now = {.kind = kind, .x = x, .slot = slot};
    if (!p->op_head) {
        int r = op_try(tp, p, &now);
        if (r < 0)
            return r;
        if (r == 1)
            return PRIDE_OK;
    }
    struct verbs_op *op = malloc(sizeof *op);
    if (!op)
        return tp_fail(tp, PRIDE_ERR_NOMEM, "no memory to queue a message to rank %d", p->rank);
    *op = now;
    op->next = NULL;
    if (p->op_tail)
        p->op_tail->next = op;
    else
        p->op_head = op;
    p->op_tail = op;
    return PRIDE_OK;
}

/* The receiver's half of a rendezvous: register the buffer, tell the sender where. */
static int rdv_recv_start(struct pride_tp *tp, struct verbs_peer *p, struct pride_xfer *x,
                          uint32_t cookie)
{
    uint32_t slot = 0;
    int st = rdv_new(tp, p->rank, x, VERBS_RDV_CTS, &slot);
    if (st)
        return st;
    struct verbs_rdv *r = &tp->rdv[slot];
    r->cookie = cookie;
    int e = verbs_mr_get(&tp->mrs, x->buf, x->len,
                         IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE, &r->mr);
    if (e) {
        rdv_free(tp, r);
        return tp_fail(tp, PRIDE_ERR_TRANSPORT, "cannot register %zu bytes at %p to receive "
                       "from rank %d: ibv_reg_mr: %s", x->len, x->buf, p->rank, strerror(e));
    }
    st = op_post(tp, p, VERBS_OP_CTS, NULL, slot);
    if (st)
        rdv_free(tp, r);
    return st;
}

/* ---- receiving ---- */

static void deliver_eager(struct pride_tp *tp, struct verbs_peer *p,
                          const struct pride_frame_hdr *h, const char *data)
{
    atomic_fetch_add(&tp->ctx->bytes_received, h->len);
    atomic_fetch_add(&tp->ctx->messages_received, 1);
    struct pride_xfer *x = posted_take(p, h->seq, h->tag);
    if (!x) {
        ux_new(tp, p, h, data);
        return;
    }
    int st = match_check(tp, p->rank, x, h);
    if (st == PRIDE_OK && x->len)
        memcpy(x->buf, data, x->len);
    complete(x, st);
}

static void on_rts(struct pride_tp *tp, struct verbs_peer *p, const struct pride_frame_hdr *h,
                   uint32_t cookie)
{
    struct pride_xfer *x = posted_take(p, h->seq, h->tag);
    if (!x) {
        struct verbs_unexp *u = ux_new(tp, p, h, NULL);
        if (u) {
            u->rdv = 1;
            u->cookie = cookie;
        }
        return;
    }
    int st = match_check(tp, p->rank, x, h);
    if (st == PRIDE_OK)
        st = rdv_recv_start(tp, p, x, cookie);
    if (st)
        complete(x, st);
}

static void on_cts(struct pride_tp *tp, struct verbs_peer *p, const struct verbs_wire *w)
{
    struct verbs_rdv *r = rdv_find(tp, w->cookie, p->rank, VERBS_RDV_WAIT_CTS);
    if (!r) {
        peer_garbage(tp, p, "a clear-to-send for no transfer of this rank");
        return;
    }
    r->raddr = w->raddr;
    r->rkey = w->rkey;
    r->rimm = w->rslot;
    r->state = VERBS_RDV_WRITING;
    int st = op_post(tp, p, VERBS_OP_WRITE, NULL, (uint32_t)(r - tp->rdv));
    if (st)
        complete(r->x, st);
}

/* The last write of a rendezvous landed in this rank's buffer. */
static void on_write_landed(struct pride_tp *tp, struct verbs_peer *p, uint32_t imm,
                            uint32_t byte_len)
{
    struct verbs_rdv *r = rdv_find(tp, imm, p->rank, VERBS_RDV_WAIT_DATA);
    if (!r) {
        peer_garbage(tp, p, "an RDMA write for no receive of this rank");
        return;
    }
    struct pride_xfer *x = r->x;
    /* the length of the last write only: the sender cut the payload by its NIC's
       largest message, which need not be this NIC's */
    if (byte_len > x->len) {
        char why[160];
        snprintf(why, sizeof why, "a %u-byte RDMA write to end a %zu-byte transfer", byte_len,
                 x->len);
        peer_garbage(tp, p, why);
        return;
    }
    atomic_fetch_add(&tp->ctx->bytes_received, x->len);
    atomic_fetch_add(&tp->ctx->messages_received, 1);
    complete(x, PRIDE_OK);
    rdv_free(tp, r);
}

static void on_error_frame(struct pride_tp *tp, struct verbs_peer *p,
                           const struct pride_frame_hdr *h, const char *data)
{
    char reason[PRIDE_FRAME_MAX_REASON + 1];
    memcpy(reason, data, h->len);
    reason[h->len] = 0;
    for (char *c = reason; *c; c++)
        if ((unsigned char)*c < 32 || (unsigned char)*c > 126)
            *c = '?';
    int st = h->status == PRIDE_ERR_MISMATCH ? PRIDE_ERR_MISMATCH : PRIDE_ERR_PEER;
    char m[160];
    pride_meta_describe(&h->meta, m, sizeof m);
    tp_fail(tp, st, "rank %d gave up on %s #%llu (%s): %s", p->rank, m,
            (unsigned long long)h->seq, pride_strerror(h->status), reason);
}

static void repost(struct pride_tp *tp, struct verbs_peer *p, uint32_t idx)
{
    struct ibv_sge sge = {(uintptr_t)(p->rbuf + (size_t)idx * VERBS_BUF_SIZE),
                          (uint32_t)VERBS_BUF_SIZE, tp->slab_mr->lkey};
    struct ibv_recv_wr wr = {.wr_id = wr_id(VERBS_WR_RECV, p->rank, idx), .sg_list = &sge,
                             .num_sge = 1},
                       *bad;
    int e = tp->api->post_recv(p->qp, &wr, &bad);
    if (e)
        tp_fail(tp, PRIDE_ERR_TRANSPORT, "ibv_post_recv for rank %d: %s", p->rank, strerror(e));
}

/* Check and act on a message in receive buffer idx. */
static void on_message(struct pride_tp *tp, struct verbs_peer *p, uint32_t idx,
                       uint32_t byte_len)
{
    const struct verbs_wire *w = (const void *)(p->rbuf + (size_t)idx * VERBS_BUF_SIZE);
    const char *data = (const char *)(w + 1);
    char why[200];
    if (byte_len < sizeof *w || w->magic != VERBS_MAGIC) {
        peer_garbage(tp, p, "a message without a pride header");
        return;
    }
    if (p->credits + w->credits > VERBS_DEPTH) {
        peer_garbage(tp, p, "more credits than receive buffers");
        return;
    }
    p->credits += w->credits;
    size_t body = byte_len - sizeof *w;
    int framed = w->type == VERBS_MSG_EAGER || w->type == VERBS_MSG_RTS ||
                 w->type == VERBS_MSG_ERROR;
    if (framed && pride_frame_check(&w->hdr, why, sizeof why) != PRIDE_OK) {
        peer_garbage(tp, p, why);
        return;
    }
    switch (w->type) {
    case VERBS_MSG_EAGER:
        if (w->hdr.kind != PRIDE_FRAME_DATA || w->hdr.len != body)
            peer_garbage(tp, p, "an eager frame whose length disagrees with its header");
        else
            deliver_eager(tp, p, &w->hdr, data);
        return;
    case VERBS_MSG_RTS:
        if (w->hdr.kind != PRIDE_FRAME_DATA || w->hdr.len <= VERBS_EAGER_MAX || body)
            peer_garbage(tp, p, "a request-to-send for a message that fits a buffer");
        else
            on_rts(tp, p, &w->hdr, w->cookie);
        return;
    case VERBS_MSG_CTS:
        on_cts(tp, p, w);
        return;
    case VERBS_MSG_CREDIT:
        return;
    case VERBS_MSG_ERROR:
        if (w->hdr.kind != PRIDE_FRAME_ERROR || w->hdr.len != body)
            peer_garbage(tp, p, "an error frame whose length disagrees with its header");
        else
            on_error_frame(tp, p, &w->hdr, data);
        return;
    default:
        snprintf(why, sizeof why, "unknown message type %u", (unsigned)w->type);
        peer_garbage(tp, p, why);
        return;
    }
}

/* A message, or the immediate of a rendezvous's last write, arrived in receive
   buffer idx: act on it and give the buffer back to the peer. */
static void on_recv(struct pride_tp *tp, struct verbs_peer *p, uint32_t idx,
                    const struct ibv_wc *wc)
{
    if (wc->opcode == IBV_WC_RECV_RDMA_WITH_IMM)
        on_write_landed(tp, p, ntohl(wc->imm_data), wc->byte_len);
    else
        on_message(tp, p, idx, wc->byte_len);
    if (p->dead)
        return;
    repost(tp, p, idx);
    p->to_return++;
}

/* A work request to or from p failed: say which, in the NIC's words. */
static void on_wc_error(struct pride_tp *tp, struct verbs_peer *p, int kind, uint32_t idx,
                        enum ibv_wc_status status)
{
    const char *ss = tp->api->wc_status_str(status);
    char what[300];
    switch (status) {
    case IBV_WC_WR_FLUSH_ERR:
        snprintf(what, sizeof what, "is no longer connected (work request flushed: %s)", ss);
        peer_lost(tp, p, what);
        return;
    case IBV_WC_RETRY_EXC_ERR:
    case IBV_WC_RNR_RETRY_EXC_ERR:
        snprintf(what, sizeof what, "stopped answering on its queue pair (%s)", ss);
        peer_lost(tp, p, what);
        return;
    case IBV_WC_LOC_LEN_ERR:
        if (kind != VERBS_WR_RECV)
            break;
        snprintf(what, sizeof what, "a message longer than a receive buffer (%s)", ss);
        peer_garbage(tp, p, what);
        return;
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_REM_INV_REQ_ERR:
    case IBV_WC_REM_OP_ERR: {
        p->dead = 1;
        struct verbs_rdv *r = (kind == VERBS_WR_WRITE || kind == VERBS_WR_WRITE_LAST) &&
                                      idx < tp->nrdv && tp->rdv[idx].used
                                  ? &tp->rdv[idx]
                                  : NULL;
        if (r)
            tp_fail(tp, PRIDE_ERR_PEER,
                    "rank %d refused an RDMA write of %zu bytes into the buffer it offered "
                    "(%s)", p->rank, r->x ? r->x->len : (size_t)0, ss);
        else
            tp_fail(tp, PRIDE_ERR_PEER, "rank %d refused a message (%s)", p->rank, ss);
        return;
    }
    default:
        break;
    }
    p->dead = 1;
    tp_fail(tp, PRIDE_ERR_TRANSPORT, "a work request %s rank %d failed on this NIC (%s)",
            kind == VERBS_WR_RECV ? "from" : "to", p->rank, ss);
}

static void on_wc(struct pride_tp *tp, const struct ibv_wc *wc)
{
    int kind = (int)(wc->wr_id >> 56);
    int peer = (int)((wc->wr_id >> 32) & 0xffffff);
    uint32_t idx = (uint32_t)wc->wr_id;
    tp->events++;
    if (peer >= tp->nranks)
        return;
    struct verbs_peer *p = &tp->peers[peer];
    if (kind != VERBS_WR_RECV) {
        p->sq_used--;
        if (kind == VERBS_WR_SEND)
            p->sfree[p->nsfree++] = (int)idx;
    }
    if (tp->detached)
        return; /* the transfers were completed with the failure already */
    if (wc->status != IBV_WC_SUCCESS) {
        on_wc_error(tp, p, kind, idx, wc->status);
        return;
    }
    if (kind == VERBS_WR_RECV) {
        on_recv(tp, p, idx, wc);
        return;
    }
    if (kind != VERBS_WR_WRITE_LAST || idx >= tp->nrdv || !tp->rdv[idx].used ||
        tp->rdv[idx].state != VERBS_RDV_WRITING)
        return;
    struct verbs_rdv *r = &tp->rdv[idx];
    atomic_fetch_add(&tp->ctx->bytes_sent, r->x->len);
    atomic_fetch_add(&tp->ctx->messages_sent, 1);
    complete(r->x, PRIDE_OK);
    rdv_free(tp, r);
}

static void cq_drain(struct pride_tp *tp)
{
    struct ibv_wc wc[32];
    for (;;) {
        int n = tp->api->poll_cq(tp->cq, 32, wc);
        if (n < 0) {
            tp_fail(tp, PRIDE_ERR_TRANSPORT, "ibv_poll_cq failed (completion queue overrun?)");
            return;
        }
        for (int i = 0; i < n; i++)
            on_wc(tp, &wc[i]);
        if (n < 32)
            break;
    }
    if (tp->detached)
        return;
    for (int j = 0; j < tp->nranks; j++)
        peer_flush(tp, &tp->peers[j]);
}

static struct verbs_peer *peer_of_id(struct pride_tp *tp, struct rdma_cm_id *id)
{
    for (int j = 0; j < tp->nranks; j++)
        if (tp->peers[j].id == id)
            return &tp->peers[j];
    return NULL;
}

static void cm_drain(struct pride_tp *tp)
{
    struct rdma_cm_event *e;
    while (tp->ev && tp->api->get_cm_event(tp->ev, &e) == 0) {
        enum rdma_cm_event_type type = e->event;
        struct verbs_peer *p = peer_of_id(tp, e->id);
        tp->api->ack_cm_event(e);
        tp->events++;
        if (type == RDMA_CM_EVENT_DISCONNECTED && p) {
            cq_drain(tp); /* what it sent before it left is in the CQ: take it first */
            peer_lost(tp, p, "disconnected");
        } else if (type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
            tp_fail(tp, PRIDE_ERR_TRANSPORT, "the RDMA device %s was removed", tp->devname);
        }
    }
}

/* Drain, arm, drain again, and look at connection events: 1 if anything happened. */
static int progress(struct pride_tp *tp)
{
    uint64_t before = tp->events;
    if (tp->cq) {
        cq_drain(tp);
        if (!tp->cq_armed) {
            int e = tp->api->req_notify_cq(tp->cq, 0);
            if (e)
                tp_fail(tp, PRIDE_ERR_TRANSPORT, "ibv_req_notify_cq: %s", strerror(e));
            tp->cq_armed = 1;
            cq_drain(tp);
        }
    }
    cm_drain(tp);
    for (int j = 0; j < tp->nranks; j++) {
        struct verbs_peer *p = &tp->peers[j];
        if (p->left_early) {
            p->left_early = 0;
            tp->events++;
            peer_lost(tp, p, "disconnected");
        }
    }
    return tp->events != before;
}

/* Sleep (without the mutex) until the CQ, the connection manager or wake() says
   something, at most ms; then take the completion event. Called with tp->mu held. */
static void sleep_on_fds(struct pride_tp *tp, int ms)
{
    struct pollfd pf[3] = {{tp->wakefd, POLLIN, 0}, {-1, POLLIN, 0}, {-1, POLLIN, 0}};
    if (tp->ch)
        pf[1].fd = tp->ch->fd;
    if (tp->ev)
        pf[2].fd = tp->ev->fd;
    pthread_mutex_unlock(&tp->mu);
    poll(pf, 3, ms);
    pthread_mutex_lock(&tp->mu);
    if (pf[0].revents) {
        uint64_t v;
        while (read(tp->wakefd, &v, sizeof v) > 0)
            ;
    }
    if (pf[1].revents) {
        struct ibv_cq *cq;
        void *cctx;
        if (tp->api->get_cq_event(tp->ch, &cq, &cctx) == 0) {
            tp->api->ack_cq_events(cq, 1);
            tp->cq_armed = 0;
        }
    }
}

static int verbs_wait(struct pride_tp *tp, struct pride_xfer *const *xs, int n, int64_t deadline)
{
    int st;
    pthread_mutex_lock(&tp->mu);
    for (;;) {
        int all = 1;
        st = PRIDE_OK;
        for (int i = 0; i < n; i++) {
            if (!xs[i])
                continue;
            if (!xs[i]->complete)
                all = 0;
            else if (xs[i]->status && !st)
                st = xs[i]->status;
        }
        if (st || all)
            break;
        st = pride_ctx_status(tp->ctx);
        if (st)
            break;
        int64_t left = deadline - pride_now_ns();
        if (deadline != 0 && left <= 0) {
            st = PRIDE_ERR_TIMEOUT;
            break;
        }
        if (!tp->polling) {
            tp->polling = 1;
            if (!progress(tp) && deadline != 0)
                sleep_on_fds(tp, (int)((left + 999999) / 1000000));
            tp->polling = 0;
            pthread_cond_broadcast(&tp->cv);
            if (deadline == 0)
                deadline = 1; /* one pass only */
        } else {
            if (deadline == 0) {
                st = PRIDE_ERR_TIMEOUT;
                break;
            }
            struct timespec ts = {deadline / 1000000000, deadline % 1000000000};
            pthread_cond_timedwait(&tp->cv, &tp->mu, &ts);
        }
    }
    pthread_mutex_unlock(&tp->mu);
    return st;
}

static void verbs_wake(struct pride_tp *tp)
{
    uint64_t one = 1;
    ssize_t r = write(tp->wakefd, &one, sizeof one);
    (void)r;
    pthread_cond_broadcast(&tp->cv);
}

/* ---- posting ---- */

static int post_check(struct pride_tp *tp, struct pride_xfer *x)
{
    x->complete = 0;
    x->status = PRIDE_OK;
    x->next = NULL;
    x->off = 0;
    int st = pride_ctx_status(tp->ctx);
    if (!st && tp->detached)
        st = PRIDE_ERR_PEER;
    if (!st && (x->peer < 0 || x->peer >= tp->nranks || (x->len && !x->buf) ||
                x->len > PRIDE_FRAME_MAX_LEN))
        st = PRIDE_ERR_INVALID;
    if (!st)
        st = seq_note(tp, x);
    if (st)
        complete(x, st);
    return st;
}

/* A send to this rank itself: hand the bytes over in memory. */
static int send_self(struct pride_tp *tp, struct pride_xfer *x)
{
    struct verbs_peer *p = &tp->peers[tp->rank];
    struct pride_xfer *r = posted_take(p, x->seq, x->tag);
    int st = PRIDE_OK;
    if (r) {
        st = match_check(tp, tp->rank, r, &x->hdr);
        if (!st && x->len)
            memcpy(r->buf, x->buf, x->len);
        complete(r, st);
    } else if (!ux_new(tp, p, &x->hdr, x->len ? x->buf : NULL)) {
        st = pride_ctx_status(tp->ctx);
    }
    complete(x, st);
    pthread_cond_broadcast(&tp->cv);
    return st;
}

static int verbs_isend(struct pride_tp *tp, struct pride_xfer *x)
{
    pthread_mutex_lock(&tp->mu);
    int st = post_check(tp, x);
    if (st)
        goto out;
    x->hdr = (struct pride_frame_hdr){.magic = PRIDE_FRAME_MAGIC,
                                      .version = PRIDE_PROTO_VERSION,
                                      .kind = PRIDE_FRAME_DATA,
                                      .tag = x->tag,
                                      .seq = x->seq,
                                      .meta = x->meta,
                                      .len = x->len};
    if (x->peer == tp->rank) {
        st = send_self(tp, x);
        goto out;
    }
    struct verbs_peer *p = &tp->peers[x->peer];
    if (x->len <= VERBS_EAGER_MAX) {
        st = op_post(tp, p, VERBS_OP_EAGER, x, 0);
    } else if (p->dead) {
        st = peer_gone(tp, p, "send to");
    } else {
        uint32_t slot = 0;
        st = rdv_new(tp, x->peer, x, VERBS_RDV_RTS, &slot);
        if (st)
            goto done;
        struct verbs_rdv *r = &tp->rdv[slot];
        int e = verbs_mr_get(&tp->mrs, x->buf, x->len, 0, &r->mr);
        if (e) {
            rdv_free(tp, r);
            st = tp_fail(tp, PRIDE_ERR_TRANSPORT, "cannot register %zu bytes at %p to send to "
                         "rank %d: ibv_reg_mr: %s", x->len, x->buf, x->peer, strerror(e));
            goto done;
        }
        st = op_post(tp, p, VERBS_OP_RTS, NULL, slot);
        if (st)
            rdv_free(tp, r);
    }
done:
    if (st)
        complete(x, st);
out:
    pthread_mutex_unlock(&tp->mu);
    return st;
}

static int verbs_irecv(struct pride_tp *tp, struct pride_xfer *x)
{
    pthread_mutex_lock(&tp->mu);
    int st = post_check(tp, x);
    if (st)
        goto out;
    struct verbs_peer *p = &tp->peers[x->peer];
    struct verbs_unexp *u = ux_take(p, x->seq, x->tag);
    if (u) {
        st = match_check(tp, x->peer, x, &u->hdr);
        if (!st && u->rdv)
            st = rdv_recv_start(tp, p, x, u->cookie);
        else if (!st && x->len)
            memcpy(x->buf, u->data, x->len);
        if (st || !u->rdv)
            complete(x, st);
        free(u->data);
        free(u);
        goto out;
    }
    if (p->dead && x->peer != tp->rank) {
        st = peer_gone(tp, p, "receive from");
        complete(x, st);
        goto out;
    }
    if (p->posted_tail)
        p->posted_tail->next = x;
    else
        p->posted_head = x;
    p->posted_tail = x;
out:
    pthread_mutex_unlock(&tp->mu);
    return st;
}

/* ---- failure and close ---- */

/* Wait, holding the mutex, until every peer's send queue is empty (the NIC has been
   told everything sent got there, or flushed it) or the deadline passes. */
static void drain_sends(struct pride_tp *tp, int64_t deadline, int stop_on_abort)
{
    for (;;) {
        progress(tp);
        int busy = 0;
        for (int j = 0; j < tp->nranks; j++) {
            struct verbs_peer *p = &tp->peers[j];
            if (p->connected && (p->sq_used > 0 || (p->op_head && !p->dead)))
                busy = 1;
        }
        int64_t left = deadline - pride_now_ns();
        if (!busy || left <= 0 ||
            (stop_on_abort && pride_ctx_status(tp->ctx) == PRIDE_ERR_ABORTED))
            return;
        /* short naps: another thread may be polling the same fds */
        sleep_on_fds(tp, left > 10000000 ? 10 : (int)(left / 1000000) + 1);
    }
}

/* Called from coll_end, while the failed call's buffers are still alive: complete
   every transfer with the failure, tell every peer why, let what is already on the
   wire (both ways) finish for a moment, then deregister every registration and
   disconnect every queue pair, so that nothing touches the callers' memory after
   this returns. */
static void verbs_broadcast_error(struct pride_tp *tp, uint64_t seq, int status,
                                  const char *reason)
{
    pthread_mutex_lock(&tp->mu);
    if (tp->detached) {
        pthread_mutex_unlock(&tp->mu);
        return;
    }
    tp->detached = 1;
    int st = pride_ctx_status(tp->ctx);
    if (!st)
        st = status;
    for (uint32_t i = 0; i < tp->nrdv; i++)
        if (tp->rdv[i].used && !tp->rdv[i].x->complete)
            complete(tp->rdv[i].x, st);
    for (int j = 0; j < tp->nranks; j++) {
        struct verbs_peer *p = &tp->peers[j];
        for (struct pride_xfer *x = p->posted_head; x; x = x->next)
            complete(x, st);
        p->posted_head = p->posted_tail = NULL;
        for (struct verbs_op *op = p->op_head, *nx; op; op = nx) {
            nx = op->next;
            if (op->x)
                complete(op->x, st);
            free(op);
        }
        p->op_head = p->op_tail = NULL;
    }
    size_t rl = strlen(reason);
    if (rl > PRIDE_FRAME_MAX_REASON)
        rl = PRIDE_FRAME_MAX_REASON;
    const struct pride_meta *m = seq_meta(tp, seq);
    struct verbs_wire w = {.type = VERBS_MSG_ERROR,
                           .hdr = {.magic = PRIDE_FRAME_MAGIC,
                                   .version = PRIDE_PROTO_VERSION,
                                   .kind = PRIDE_FRAME_ERROR,
                                   .status = status,
                                   .seq = seq,
                                   .len = rl}};
    if (m)
        w.hdr.meta = *m;
    /* also to a peer whose frame was refused: its queue pair still works */
    for (int j = 0; j < tp->nranks; j++) {
        struct verbs_peer *p = &tp->peers[j];
        if (p->connected && can_send(p, 0))
            send_msg(tp, p, &w, reason, rl);
    }
    drain_sends(tp, pride_now_ns() + INT64_C(200000000), 0);
    verbs_mr_revoke(&tp->mrs);
    for (uint32_t i = 0; i < tp->nrdv; i++)
        if (tp->rdv[i].used)
            rdv_free(tp, &tp->rdv[i]);
    for (int j = 0; j < tp->nranks; j++) {
        struct verbs_peer *p = &tp->peers[j];
        if (p->connected) {
            tp->api->disconnect(p->id); /* the peer sees DISCONNECTED */
            p->connected = 0;
            p->dead = 1;
        }
    }
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
}

static void verbs_close(struct pride_tp *tp)
{
    if (!tp)
        return;
    const struct verbs_api *api = tp->api;
    pthread_mutex_lock(&tp->mu);
    if (!tp->detached && tp->cq)
        drain_sends(tp, pride_deadline_ns(tp->ctx->timeout_ms), 1);
    for (int j = 0; tp->peers && j < tp->nranks; j++) {
        struct verbs_peer *p = &tp->peers[j];
        if (p->id) {
            if (p->connected && !p->dead)
                api->disconnect(p->id);
            if (p->id->qp)
                api->destroy_qp(p->id);
            api->destroy_id(p->id);
        }
        for (struct verbs_unexp *u = p->ux_head, *n; u; u = n) {
            n = u->next;
            free(u->data);
            free(u);
        }
        for (struct verbs_op *op = p->op_head, *n; op; op = n) {
            n = op->next;
            free(op);
        }
    }
    pthread_mutex_unlock(&tp->mu);
    verbs_mr_clear(&tp->mrs);
    if (tp->slab_mr)
        api->dereg_mr(tp->slab_mr);
    if (tp->cq)
        api->destroy_cq(tp->cq);
    if (tp->ch)
        api->destroy_comp_channel(tp->ch);
    if (tp->pd)
        api->dealloc_pd(tp->pd);
    if (tp->listen_id)
        api->destroy_id(tp->listen_id);
    if (tp->ev)
        api->destroy_event_channel(tp->ev);
    free(tp->slab);
    free(tp->rdv);
    free(tp->peers);
    if (tp->wakefd >= 0)
        close(tp->wakefd);
    pthread_cond_destroy(&tp->cv);
    pthread_mutex_destroy(&tp->mu);
    free(tp);
}

/* ---- start-up pieces used by verbs_connect.c ---- */

int verbs_resources(struct pride_tp *tp, struct ibv_context *verbs)
{
    pride_context_t *ctx = tp->ctx;
    const struct verbs_api *api = tp->api;
    int npeers = tp->nranks - 1;
    errno = 0;
    tp->pd = api->alloc_pd(verbs);
    if (!tp->pd)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "ibv_alloc_pd on %s: %s", tp->devname,
                           strerror(errno));
    tp->ch = api->create_comp_channel(verbs);
    if (!tp->ch)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "ibv_create_comp_channel on %s: %s",
                           tp->devname, strerror(errno));
    fcntl(tp->ch->fd, F_SETFL, fcntl(tp->ch->fd, F_GETFL) | O_NONBLOCK);
    int cqe = npeers * (VERBS_DEPTH + VERBS_SQ_DEPTH) + 16;
    tp->cq = api->create_cq(verbs, cqe, tp, tp->ch, 0);
    if (!tp->cq)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "ibv_create_cq of %d entries on %s: %s", cqe,
                           tp->devname, strerror(errno));
    size_t slab = (size_t)tp->nranks * (VERBS_DEPTH + VERBS_SBUFS) * VERBS_BUF_SIZE;
    if (posix_memalign((void **)&tp->slab, 4096, slab) != 0)
        return pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for %zu bytes of bounce buffers",
                           slab);
    memset(tp->slab, 0, slab);
    tp->slab_mr = api->reg_mr(tp->pd, tp->slab, slab, IBV_ACCESS_LOCAL_WRITE);
    if (!tp->slab_mr)
        return pride_error(ctx, PRIDE_ERR_TRANSPORT, "ibv_reg_mr of %zu bytes of bounce buffers "
                           "on %s: %s (is the locked-memory limit, ulimit -l, too low?)",
                           slab, tp->devname, strerror(errno));
    tp->mrs.api = api;
    tp->mrs.pd = tp->pd;
    for (int j = 0; j < tp->nranks; j++) {
        struct verbs_peer *p = &tp->peers[j];
        p->rbuf = tp->slab + (size_t)j * (VERBS_DEPTH + VERBS_SBUFS) * VERBS_BUF_SIZE;
        p->sbuf = p->rbuf + (size_t)VERBS_DEPTH * VERBS_BUF_SIZE;
        for (int i = 0; i < VERBS_SBUFS; i++)
            p->sfree[i] = i;
        p->nsfree = VERBS_SBUFS;
    }
    return PRIDE_OK;
}

int verbs_peer_setup(struct pride_tp *tp, struct verbs_peer *p, struct rdma_cm_id *id)
{
    struct ibv_qp_init_attr qa = {.send_cq = tp->cq,
                                  .recv_cq = tp->cq,
                                  .qp_type = IBV_QPT_RC,
                                  .cap = {.max_send_wr = VERBS_SQ_DEPTH,
                                          .max_recv_wr = VERBS_DEPTH,
                                          .max_send_sge = 1,
                                          .max_recv_sge = 1}};
    if (tp->api->create_qp(id, tp->pd, &qa) != 0)
        return pride_error(tp->ctx, PRIDE_ERR_TRANSPORT, "rdma_create_qp for rank %d: %s",
                           p->rank, strerror(errno));
    p->id = id;
    p->qp = id->qp;
    for (uint32_t i = 0; i < VERBS_DEPTH; i++)
        repost(tp, p, i);
    return pride_ctx_status(tp->ctx) ? PRIDE_ERR_TRANSPORT : PRIDE_OK;
}

static int verbs_open(pride_context_t *ctx, struct pride_tp **out)
{
    struct pride_tp *tp = calloc(1, sizeof *tp);
    if (!tp)
        return pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for the verbs transport");
    tp->ctx = ctx;
    tp->rank = ctx->rank;
    tp->nranks = ctx->nranks;
    tp->wakefd = -1;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&tp->cv, &ca);
    pthread_condattr_destroy(&ca);
    int st;
    tp->peers = calloc((size_t)tp->nranks, sizeof *tp->peers);
    tp->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!tp->peers || tp->wakefd < 0) {
        st = pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for %d peers", tp->nranks);
        goto fail;
    }
    for (int j = 0; j < tp->nranks; j++)
        tp->peers[j].rank = j;
    st = verbs_connect_all(tp);
    if (st)
        goto fail;
    *out = tp;
    return PRIDE_OK;
fail:
    tp->detached = 1; /* nothing to drain, and the sentence above is the one to keep */
    verbs_close(tp);
    return st;
}

static int verbs_mem_reg(struct pride_tp *tp, void *buf, size_t len, void **mr)
{
    *mr = NULL;
    if (!tp->pd || !buf || !len)
        return PRIDE_OK; /* a job of one, or nothing to register */
    pthread_mutex_lock(&tp->mu);
    struct verbs_mr *m;
    int e = verbs_mr_get(&tp->mrs, buf, len, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE, &m);
    int st = e ? pride_error(tp->ctx, PRIDE_ERR_TRANSPORT, "ibv_reg_mr of %zu bytes at %p: %s",
                             len, buf, strerror(e))
               : PRIDE_OK;
    pthread_mutex_unlock(&tp->mu);
    if (!st)
        *mr = m;
    return st;
}

static void verbs_mem_dereg(struct pride_tp *tp, void *mr)
{
    if (!mr)
        return;
    pthread_mutex_lock(&tp->mu);
    verbs_mr_put(&tp->mrs, mr);
    pthread_mutex_unlock(&tp->mu);
}

const struct pride_tp_ops pride_verbs_ops = {
    .size = sizeof(struct pride_tp_ops),
    .name = "verbs",
    .open = verbs_open,
    .close = verbs_close,
    .mem_reg = verbs_mem_reg,
    .mem_dereg = verbs_mem_dereg,
    .isend = verbs_isend,
    .irecv = verbs_irecv,
    .wait = verbs_wait,
    .wake = verbs_wake,
    .broadcast_error = verbs_broadcast_error,
};
