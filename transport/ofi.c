/*
 * The ofi backend's data path. A frame with a payload of at most OFI_EAGER bytes is
 * one tagged message, header and payload in a two-element iov, received into the
 * header, the user's buffer and spare room; a larger payload follows its header as
 * a second message (ofi.h), received straight into the user's buffer once the header
 * has checked out. libfabric matches (peer, seq, tag); the receiver then checks the
 * header as the tcp backend does: a frame of another collective or with other
 * arguments or another length fails the context with PRIDE_ERR_MISMATCH.
 *
 * Everything runs under one mutex (FI_THREAD_DOMAIN), driven by the waiting threads:
 * one of them reads the completion queue and, when there is nothing, blocks in
 * ppoll() on the CQ's wait fd (after fi_trywait), an eventfd for wake-ups and the
 * pidfds of the peers on this host; the others sleep on a condition variable. A
 * provider without a wait fd (shm) has no way to wake a sleeper, so peers ring each
 * other's eventfd (ofi_open.c: doorbells) when they send, and the sleeper also wakes
 * on a backoff as a safety net; nothing spins.
 *
 * On failure broadcast_error sends an ERROR frame (a control tag, always received
 * by one standing receive), cancels every posted receive and waits, briefly, for the
 * provider to give them back; whatever it still holds after that is cut off by
 * closing the endpoint, so no user buffer is referenced once it returns.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include "ofi.h"

#define HDR_LEN sizeof(struct pride_frame_hdr)
/* CQ without wait fd: the first and the longest sleep. With doorbells the sleep is
   only a safety net, and short sleeps would cost more than they find: every early
   wake-up on a loaded host queues the thread behind others just when its bell rings. */
#define BACKOFF_MIN_NS INT64_C(2000)
#define BACKOFF_MAX_NS INT64_C(1000000)
#define BELL_BACKOFF_MIN_NS INT64_C(200000)
#define BELL_BACKOFF_MAX_NS INT64_C(10000000)
#define FD_WAIT_CAP_NS INT64_C(250000000) /* re-check even with a wait fd */
#define DEAD_GRACE_NS INT64_C(500000000)  /* drain what a dead peer sent before failing */
#define DETACH_NS INT64_C(1000000000)     /* broadcast_error: time to get buffers back */

/* ---- lists and ops ---- */

static void list_push(struct ofi_list *l, struct ofi_op *op)
{
    op->next = NULL;
    op->prev = l->tail;
    if (l->tail)
        l->tail->next = op;
    else
        l->head = op;
    l->tail = op;
}

static void list_del(struct ofi_list *l, struct ofi_op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        l->head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        l->tail = op->prev;
    op->prev = op->next = NULL;
}

struct ofi_op *ofi_op_new(struct pride_tp *tp)
{
    if (!tp->free_ops.head) {
        struct ofi_slab *s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        if (tp->mr_local && ofi_mr_reg_raw(tp, s->ops, sizeof s->ops, &s->mr) != PRIDE_OK) {
            free(s);
            return NULL;
        }
        s->next = tp->slabs;
        tp->slabs = s;
        for (int i = 0; i < OFI_SLAB_OPS; i++) {
            s->ops[i].slab = s;
            list_push(&tp->free_ops, &s->ops[i]);
        }
    }
    struct ofi_op *op = tp->free_ops.head;
    list_del(&tp->free_ops, op);
    struct ofi_slab *s = op->slab;
    /* a zero header: a receive the provider truncates without placing anything
       shows no magic */
    memset(op, 0, offsetof(struct ofi_op, small));
    op->slab = s;
    return op;
}

static void op_free(struct pride_tp *tp, struct ofi_op *op)
{
    if (op->state == OFI_OP_PENDING)
        list_del(&tp->pending, op);
    else if (op->state == OFI_OP_POSTED)
        list_del(&tp->posted, op);
    if (op->mr)
        ofi_mr_put(tp, op->mr);
    op->mr = NULL;
    op->state = OFI_OP_FREE;
    list_push(&tp->free_ops, op);
}

static void *slab_desc(const struct ofi_op *op)
{
    return op->slab->mr ? fi_mr_desc(op->slab->mr) : NULL;
}

/* ---- failure ---- */

/* Fail the context with a sentence; called with tp->mu held. */
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

/* Fail the context keeping the sentence already recorded. */
static int fail_kept(struct pride_tp *tp, int st)
{
    st = pride_fail(tp->ctx, st);
    pthread_cond_broadcast(&tp->cv);
    return st;
}

static void complete(struct pride_xfer *x, int st)
{
    x->status = st;
    x->complete = 1;
}

static int is_send(enum ofi_op_kind k)
{
    return k == OFI_OP_SEND || k == OFI_OP_SEND_PAYLOAD;
}

/* One libfabric operation of x ended with st. x->off (transport-private) counts the
   operations still in flight for x; x completes with the last of them, with the
   first failure, so its buffer is the caller's again only when libfabric is done. */
static void part_done(struct pride_tp *tp, struct pride_xfer *x, int sending, int st)
{
    if (st && !x->status)
        x->status = st;
    if (--x->off > 0)
        return;
    if (!x->status) {
        pride_context_t *ctx = tp->ctx;
        if (sending) {
            atomic_fetch_add(&ctx->bytes_sent, x->len);
            atomic_fetch_add(&ctx->messages_sent, 1);
            atomic_fetch_add(&ctx->header_bytes_sent, HDR_LEN);
        } else {
            atomic_fetch_add(&ctx->bytes_received, x->len);
            atomic_fetch_add(&ctx->messages_received, 1);
        }
    }
    x->complete = 1;
}

static void seq_note(struct pride_tp *tp, const struct pride_xfer *x)
{
    struct ofi_seqslot *s = &tp->seqs[x->seq % OFI_SEQ_SLOTS];
    s->valid = 1;
    s->seq = x->seq;
    s->meta = x->meta;
}

static uint64_t data_tag(uint64_t seq, uint32_t tag)
{
    return ((seq & ((UINT64_C(1) << OFI_TAG_SEQ_BITS) - 1)) << 32) | tag;
}

/* The completion queue's sentence for an error entry. */
static const char *cq_why(struct pride_tp *tp, const struct fi_cq_err_entry *e, char *buf,
                          size_t len)
{
    const char *s = tp->cq ? fi_cq_strerror(tp->cq, e->prov_errno, e->err_data, buf, len) : NULL;
    if (s && s != buf)
        snprintf(buf, len, "%s", s);
    if (!s || !buf[0])
        snprintf(buf, len, "%s", fi_strerror(e->err < 0 ? -e->err : e->err));
    return buf;
}

/* ---- posting ---- */

static int op_submit(struct pride_tp *tp, struct ofi_op *op)
{
    ssize_t ret;
    if (op->inject)
        ret = fi_tinject(tp->ep, op->small, op->iov[0].iov_len, op->msg.addr, op->msg.tag);
    else if (is_send(op->kind) || op->kind == OFI_OP_ERR_SEND)
        ret = fi_tsendmsg(tp->ep, &op->msg, FI_COMPLETION);
    else
        ret = fi_trecvmsg(tp->ep, &op->msg, FI_COMPLETION);
    return (int)ret;
}

/* Wake peer j if it sleeps for want of a wait fd: there is work for it. */
static void ring(struct pride_tp *tp, int j)
{
    if (j < 0 || j == tp->rank || tp->peers[j].bell < 0)
        return;
    uint64_t one = 1;
    ssize_t r = write(tp->peers[j].bell, &one, sizeof one);
    (void)r;
}

/* The provider took op. */
static void op_taken(struct pride_tp *tp, struct ofi_op *op)
{
    if (is_send(op->kind) || op->kind == OFI_OP_ERR_SEND)
        ring(tp, op->peer);
    if (op->inject) { /* no completion will come */
        part_done(tp, op->x, 1, PRIDE_OK);
        op_free(tp, op);
        return;
    }
    op->state = OFI_OP_POSTED;
    list_push(&tp->posted, op);
}

/* A post the provider refused for good. */
static void post_failed(struct pride_tp *tp, struct ofi_op *op, int ret)
{
    if (op->x) {
        char m[160];
        pride_meta_describe(&op->x->meta, m, sizeof m);
        int sending = is_send(op->kind);
        int st = tp_fail(tp, sending ? PRIDE_ERR_PEER : PRIDE_ERR_TRANSPORT,
                         "%s #%llu: %s rank %d (message %u) failed on %s: %s", m,
                         (unsigned long long)op->x->seq,
                         sending ? "fi_tsendmsg to" : "fi_trecvmsg from", op->peer,
                         (unsigned)op->x->tag, tp->prov, fi_strerror(-ret));
        part_done(tp, op->x, sending, st);
    } else if (op->kind == OFI_OP_ERR_RECV) {
        tp_fail(tp, PRIDE_ERR_TRANSPORT, "cannot post the receive for error frames on %s: %s",
                tp->prov, fi_strerror(-ret));
    }
    op_free(tp, op);
}

/* Hand an op to the provider, or queue it behind earlier ones the provider was not
   ready for (-FI_EAGAIN, e.g. while tcp;ofi_rxm connects), keeping their order. A
   user's op is not started once the context has failed. */
static void op_post(struct pride_tp *tp, struct ofi_op *op)
{
    int st = pride_ctx_status(tp->ctx);
    if (op->x && (st || tp->detached)) {
        part_done(tp, op->x, is_send(op->kind), st ? st : PRIDE_ERR_PEER);
        op_free(tp, op);
        return;
    }
    if (tp->pending.head) {
        op->state = OFI_OP_PENDING;
        list_push(&tp->pending, op);
        return;
    }
    int ret = op_submit(tp, op);
    if (ret == -FI_EAGAIN) {
        op->state = OFI_OP_PENDING;
        list_push(&tp->pending, op);
    } else if (ret) {
        post_failed(tp, op, ret);
    } else {
        op_taken(tp, op);
    }
}

static void pending_flush(struct pride_tp *tp)
{
    while (tp->pending.head && tp->ep) {
        struct ofi_op *op = tp->pending.head;
        int ret = op_submit(tp, op);
        if (ret == -FI_EAGAIN)
            return;
        list_del(&tp->pending, op);
        op->state = OFI_OP_FREE;
        if (ret)
            post_failed(tp, op, ret);
        else
            op_taken(tp, op);
    }
}

int ofi_post_err_recv(struct pride_tp *tp)
{
    struct ofi_op *op = ofi_op_new(tp);
    if (!op)
        return pride_error(tp->ctx, PRIDE_ERR_NOMEM, "rank %d: no memory for a receive",
                           tp->rank);
    op->kind = OFI_OP_ERR_RECV;
    op->peer = -1;
    op->iov[0] = (struct iovec){&op->hdr, HDR_LEN};
    op->iov[1] = (struct iovec){op->small, PRIDE_FRAME_MAX_REASON};
    op->desc[0] = op->desc[1] = slab_desc(op);
    op->msg = (struct fi_msg_tagged){.msg_iov = op->iov,
                                     .desc = op->desc,
                                     .iov_count = 2,
                                     .addr = FI_ADDR_UNSPEC,
                                     .tag = OFI_TAG_CTRL,
                                     .ignore = UINT32_MAX, /* the sender's rank */
                                     .context = &op->fctx};
    op_post(tp, op);
    return pride_ctx_status(tp->ctx);
}

/* Checks shared by isend and irecv; completes x on failure. */
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
    if (st)
        complete(x, st);
    else
        seq_note(tp, x);
    return st;
}

/* A new op of x. Its iov starts with the header (frames) or the user's buffer
   (payloads), registered if the provider wants it; the caller adds the rest. */
static int op_user(struct pride_tp *tp, struct pride_xfer *x, enum ofi_op_kind kind,
                   int with_user_buf, struct ofi_op **out)
{
    struct ofi_op *op = ofi_op_new(tp);
    if (!op)
        return pride_error(tp->ctx, PRIDE_ERR_NOMEM, "rank %d: no memory for an operation",
                           tp->rank);
    op->kind = kind;
    op->x = x;
    op->peer = x->peer;
    if (tp->mr_local && with_user_buf && x->len) {
        int st = ofi_mr_get(tp, x->buf, x->len, 0, &op->mr);
        if (st) {
            op_free(tp, op);
            return st;
        }
    }
    int payload = kind == OFI_OP_SEND_PAYLOAD || kind == OFI_OP_RECV_PAYLOAD;
    size_t n = 0;
    if (!payload) {
        op->iov[n] = (struct iovec){&op->hdr, HDR_LEN};
        op->desc[n++] = slab_desc(op);
    }
    if (with_user_buf && x->len) {
        op->iov[n] = (struct iovec){x->buf, x->len};
        op->desc[n++] = op->mr ? op->mr->desc : NULL;
    }
    op->msg = (struct fi_msg_tagged){.msg_iov = op->iov,
                                     .desc = op->desc,
                                     .iov_count = n,
                                     .addr = tp->peers[x->peer].addr,
                                     .tag = data_tag(x->seq, x->tag) |
                                            (payload ? OFI_TAG_PAYLOAD : 0),
                                     .context = &op->fctx};
    *out = op;
    return PRIDE_OK;
}

/* A thread blocked in ppoll must see work posted by another thread. */
static void poke_poller(struct pride_tp *tp)
{
    if (tp->polling) {
        uint64_t one = 1;
        ssize_t r = write(tp->wakefd, &one, sizeof one);
        (void)r;
    }
}

static int ofi_isend(struct pride_tp *tp, struct pride_xfer *x)
{
    pthread_mutex_lock(&tp->mu);
    struct ofi_op *op = NULL, *pl = NULL;
    int st = post_check(tp, x);
    if (st)
        goto out;
    int large = x->len > OFI_EAGER;
    size_t inline_len = large ? 0 : x->len;
    size_t limit = tp->inject_size < OFI_SMALL ? tp->inject_size : OFI_SMALL;
    int inject = HDR_LEN + inline_len <= limit; /* one contiguous copy, no completion */
    st = op_user(tp, x, OFI_OP_SEND, !large && !inject, &op);
    if (!st && large)
        st = op_user(tp, x, OFI_OP_SEND_PAYLOAD, 1, &pl);
    if (st) {
        if (op)
            op_free(tp, op);
        complete(x, fail_kept(tp, st));
        goto out;
    }
    op->hdr = (struct pride_frame_hdr){.magic = PRIDE_FRAME_MAGIC,
                                       .version = PRIDE_PROTO_VERSION,
                                       .kind = PRIDE_FRAME_DATA,
                                       .tag = x->tag,
                                       .seq = x->seq,
                                       .meta = x->meta,
                                       .len = x->len};
    if (inject) {
        op->inject = 1;
        memcpy(op->small, &op->hdr, HDR_LEN);
        if (inline_len)
            memcpy(op->small + HDR_LEN, x->buf, inline_len);
        op->iov[0] = (struct iovec){op->small, HDR_LEN + inline_len};
    }
    x->off = large ? 2 : 1;
    op_post(tp, op);
    if (pl)
        op_post(tp, pl);
    st = x->complete ? x->status : PRIDE_OK;
    poke_poller(tp);
out:
    pthread_mutex_unlock(&tp->mu);
    return st;
}

static int ofi_irecv(struct pride_tp *tp, struct pride_xfer *x)
{
    pthread_mutex_lock(&tp->mu);
    struct ofi_op *op = NULL;
    int st = post_check(tp, x);
    if (st)
        goto out;
    int large = x->len > OFI_EAGER;
    st = op_user(tp, x, OFI_OP_RECV, !large, &op);
    if (st) {
        complete(x, fail_kept(tp, st));
        goto out;
    }
    /* room for any eager payload, so that no frame is longer than this receive */
    size_t room = OFI_EAGER - (large ? 0 : x->len);
    if (room) {
        op->iov[op->msg.iov_count] = (struct iovec){op->small, room};
        op->desc[op->msg.iov_count++] = slab_desc(op);
    }
    x->off = 1;
    op_post(tp, op);
    st = x->complete ? x->status : PRIDE_OK;
    poke_poller(tp);
out:
    pthread_mutex_unlock(&tp->mu);
    return st;
}

/* ---- completions ---- */

/* A frame's header (and eager payload) landed in op, got bytes in all: is it what x
   expects? For a large frame the payload's receive is posted now that it is. */
static int recv_check(struct pride_tp *tp, struct ofi_op *op, size_t got, int truncated)
{
    struct pride_xfer *x = op->x;
    const struct pride_frame_hdr *h = &op->hdr;
    char why[400], m[160], theirs[160];
    if (got < HDR_LEN)
        return tp_fail(tp, PRIDE_ERR_PEER,
                       "rank %d sent a malformed frame: %zu bytes, shorter than a frame header",
                       op->peer, got);
    if (pride_frame_check(h, why, sizeof why) != PRIDE_OK)
        return tp_fail(tp, PRIDE_ERR_PEER, "rank %d sent a malformed frame: %s", op->peer, why);
    if (h->kind != PRIDE_FRAME_DATA)
        return tp_fail(tp, PRIDE_ERR_PEER,
                       "rank %d sent a malformed frame: an error frame under a data tag",
                       op->peer);
    size_t inline_len = h->len <= OFI_EAGER ? (size_t)h->len : 0;
    if (!truncated && got - HDR_LEN != inline_len)
        return tp_fail(tp, PRIDE_ERR_PEER,
                       "rank %d sent a malformed frame: its header announces %llu bytes but "
                       "%zu came with it", op->peer, (unsigned long long)h->len, got - HDR_LEN);
    pride_meta_describe(&h->meta, theirs, sizeof theirs);
    if (pride_meta_compare(&x->meta, &h->meta, why, sizeof why) != PRIDE_OK)
        return tp_fail(tp, PRIDE_ERR_MISMATCH, "collective #%llu: %s (rank %d sent a frame of %s)",
                       (unsigned long long)h->seq, why, op->peer, theirs);
    pride_meta_describe(&x->meta, m, sizeof m);
    if (h->seq != x->seq || h->tag != x->tag)
        return tp_fail(tp, PRIDE_ERR_MISMATCH,
                       "%s #%llu: rank %d's frame of #%llu message %u came where message %u "
                       "was expected", m, (unsigned long long)x->seq, op->peer,
                       (unsigned long long)h->seq, (unsigned)h->tag, (unsigned)x->tag);
    if (truncated || h->len != x->len)
        return tp_fail(tp, PRIDE_ERR_MISMATCH,
                       "%s #%llu: rank %d sent %llu bytes for message %u, this rank expected %zu",
                       m, (unsigned long long)h->seq, op->peer, (unsigned long long)h->len,
                       (unsigned)h->tag, x->len);
    if (x->len <= OFI_EAGER)
        return PRIDE_OK;
    struct ofi_op *pl = NULL;
    int st = op_user(tp, x, OFI_OP_RECV_PAYLOAD, 1, &pl);
    if (st)
        return fail_kept(tp, st);
    x->off++;
    op_post(tp, pl);
    return PRIDE_OK;
}

/* A message longer than the receive: only a peer that does not speak this protocol
   sends one. Some providers place what fits, header included, others nothing. */
static int recv_truncated(struct pride_tp *tp, struct ofi_op *op, const struct fi_cq_err_entry *e)
{
    struct pride_xfer *x = op->x;
    if (op->hdr.magic == PRIDE_FRAME_MAGIC)
        return recv_check(tp, op, HDR_LEN, 1);
    return tp_fail(tp, PRIDE_ERR_PEER,
                   "rank %d sent a malformed frame: a message %llu bytes longer than any frame "
                   "of %zu bytes", op->peer, (unsigned long long)e->olen, x->len);
}

/* An ERROR frame from a peer: fail the context with its reason. */
static void err_frame(struct pride_tp *tp, struct ofi_op *op, uint64_t tag, size_t got)
{
    struct pride_frame_hdr *h = &op->hdr;
    int from = (int)(uint32_t)tag;
    char why[200];
    if (from >= tp->nranks || got < HDR_LEN) {
        tp_fail(tp, PRIDE_ERR_PEER, "a malformed error frame came (from rank %d, %zu bytes)",
                from, got);
        return;
    }
    if (pride_frame_check(h, why, sizeof why) != PRIDE_OK || h->kind != PRIDE_FRAME_ERROR ||
        h->len != got - HDR_LEN) {
        tp_fail(tp, PRIDE_ERR_PEER, "rank %d sent a malformed error frame: %s", from,
                h->kind != PRIDE_FRAME_ERROR ? "not an error frame" : why);
        return;
    }
    char reason[PRIDE_FRAME_MAX_REASON + 1];
    memcpy(reason, op->small, h->len);
    reason[h->len] = 0;
    for (char *c = reason; *c; c++)
        if ((unsigned char)*c < 32 || (unsigned char)*c > 126)
            *c = '?';
    int st = h->status == PRIDE_ERR_MISMATCH ? PRIDE_ERR_MISMATCH : PRIDE_ERR_PEER;
    char m[160];
    pride_meta_describe(&h->meta, m, sizeof m);
    tp_fail(tp, st, "rank %d gave up on %s #%llu (%s): %s", from, m, (unsigned long long)h->seq,
            pride_strerror(h->status), reason);
}

/* Status for user transfers the provider gives back after a detach. */
static int detach_status(struct pride_tp *tp)
{
    int st = pride_ctx_status(tp->ctx);
    return st ? st : PRIDE_ERR_PEER;
}

/* The status of a user op that ended with an error entry. */
static int user_op_failed(struct pride_tp *tp, struct ofi_op *op, const struct fi_cq_err_entry *e)
{
    char why[256], m[160];
    if (e->err == FI_ECANCELED || op->cancelled)
        return detach_status(tp);
    if (op->kind == OFI_OP_RECV && (e->err == FI_ETRUNC || e->err == -FI_ETRUNC))
        return recv_truncated(tp, op, e);
    pride_meta_describe(&op->x->meta, m, sizeof m);
    int sending = is_send(op->kind);
    return tp_fail(tp, PRIDE_ERR_PEER, "%s #%llu: %s message %u %s rank %d failed: %s%s", m,
                   (unsigned long long)op->x->seq, sending ? "sending" : "receiving",
                   (unsigned)op->x->tag, sending ? "to" : "from", op->peer,
                   cq_why(tp, e, why, sizeof why),
                   sending ? " (did it die or call pride_finalize early?)" : "");
}

/* One completion, successful (e == NULL) or not. */
static void on_completion(struct pride_tp *tp, struct ofi_op *op, const struct fi_cq_tagged_entry *c,
                          const struct fi_cq_err_entry *e)
{
    char why[256];
    int cancelled = e && (e->err == FI_ECANCELED || op->cancelled);
    struct pride_xfer *x = op->x;
    int st = PRIDE_OK;
    if (x) {
        size_t got = e ? 0 : c->len;
        if (op->kind == OFI_OP_RECV_PAYLOAD || got > tp->inject_size)
            ring(tp, op->peer); /* a send larger than the provider buffers waits for us */
        if (tp->detached) /* its caller has given up: whatever came is not used */
            st = detach_status(tp);
        else if (e)
            st = user_op_failed(tp, op, e);
        else if (op->kind == OFI_OP_RECV)
            st = recv_check(tp, op, got, 0);
        else if (op->kind == OFI_OP_RECV_PAYLOAD && got != x->len)
            st = tp_fail(tp, PRIDE_ERR_PEER,
                         "rank %d sent a malformed frame: %zu bytes of payload after a header "
                         "announcing %zu", op->peer, got, x->len);
        part_done(tp, x, is_send(op->kind), st);
        op_free(tp, op);
        return;
    }
    if (op->kind == OFI_OP_ERR_RECV && !cancelled) {
        if (e)
            tp_fail(tp, PRIDE_ERR_PEER, "an error frame could not be received: %s",
                    cq_why(tp, e, why, sizeof why));
        else
            err_frame(tp, op, c->tag, c->len);
    }
    int repost = op->kind == OFI_OP_ERR_RECV && !cancelled && !tp->detached;
    op_free(tp, op);
    if (repost)
        ofi_post_err_recv(tp);
}

/* Read everything the CQ has; returns the number of completions. */
static int progress(struct pride_tp *tp)
{
    int got = 0;
    struct fi_cq_tagged_entry c[16];
    while (tp->cq) {
        ssize_t n = fi_cq_read(tp->cq, c, 16);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++)
                on_completion(tp, (struct ofi_op *)c[i].op_context, &c[i], NULL);
            got += (int)n;
            continue;
        }
        if (n == -FI_EAVAIL) {
            struct fi_cq_err_entry e;
            memset(&e, 0, sizeof e);
            if (fi_cq_readerr(tp->cq, &e, 0) == 1) {
                on_completion(tp, (struct ofi_op *)e.op_context, NULL, &e);
                got++;
                continue;
            }
        }
        if (n != -FI_EAGAIN && n != -FI_EAVAIL) {
            tp_fail(tp, PRIDE_ERR_TRANSPORT, "fi_cq_read on %s: %s", tp->prov,
                    fi_strerror((int)-n));
        }
        break;
    }
    pending_flush(tp);
    if (got)
        tp->backoff_ns = 0;
    return got;
}

/* ---- peers that exited ---- */

/* A peer on this host whose process is gone, with a data op still waiting on it after
   the grace period, fails the context. Returns the earliest time to look again. */
static int64_t dead_check(struct pride_tp *tp, int64_t now)
{
    int64_t next = INT64_MAX;
    for (int j = 0; j < tp->nranks; j++) {
        int64_t t = tp->peers[j].dead_ns;
        if (!t)
            continue;
        struct ofi_op *owed = NULL;
        struct ofi_list *lists[2] = {&tp->posted, &tp->pending};
        for (int l = 0; l < 2 && !owed; l++)
            for (struct ofi_op *op = lists[l]->head; op && !owed; op = op->next)
                if (op->x && op->peer == j)
                    owed = op;
        if (!owed)
            continue;
        if (now - t < DEAD_GRACE_NS) {
            if (t + DEAD_GRACE_NS < next)
                next = t + DEAD_GRACE_NS;
            continue;
        }
        char m[160];
        pride_meta_describe(&owed->x->meta, m, sizeof m);
        tp_fail(tp, PRIDE_ERR_PEER,
                "rank %d exited while this rank was still %s it (%s #%llu, message %u; did it "
                "die or call pride_finalize early?)",
                j, is_send(owed->kind) ? "sending to" : "waiting for", m,
                (unsigned long long)owed->x->seq, (unsigned)owed->x->tag);
        return INT64_MAX;
    }
    return next;
}

/* Block until the CQ, a wake-up, a peer's exit or the deadline (capped, and shorter
   when the CQ must be polled). Called by the poller with tp->mu held; drops it. */
static void block(struct pride_tp *tp, int64_t deadline)
{
    struct pollfd *fds = tp->pfds;
    int *who = tp->pwho;
    int n = 0;
    int64_t now = pride_now_ns();
    /* a peer's death found now ends the caller's wait; a context failed before
       (broadcast_error waiting for its buffers) still sleeps */
    int failed = pride_ctx_status(tp->ctx) != PRIDE_OK;
    int64_t until = dead_check(tp, now);
    if (!failed && pride_ctx_status(tp->ctx))
        return;
    if (deadline < until)
        until = deadline;
    fds[n] = (struct pollfd){tp->wakefd, POLLIN, 0};
    who[n++] = -1;
    /* Ops the provider was not ready for (pending) are retried on a backoff; with a
       wait fd a completion, which is what frees the provider's room, still wakes at
       once. */
    int sleepy = tp->cq_fd < 0 || tp->pending.head;
    if (tp->cq_fd >= 0) {
        struct fid *f = &tp->cq->fid;
        int ret = fi_trywait(tp->fabric, &f, 1);
        if (ret == -FI_EAGAIN)
            return; /* completions are queued: read them */
        if (ret == FI_SUCCESS) {
            fds[n] = (struct pollfd){tp->cq_fd, POLLIN, 0};
            who[n++] = -1;
        } else {
            sleepy = 1;
        }
    }
    int64_t lo = tp->bells ? BELL_BACKOFF_MIN_NS : BACKOFF_MIN_NS;
    int64_t hi = tp->bells ? BELL_BACKOFF_MAX_NS : BACKOFF_MAX_NS;
    if (tp->backoff_ns < lo)
        tp->backoff_ns = lo;
    int64_t cap = sleepy ? tp->backoff_ns : FD_WAIT_CAP_NS;
    if (now + cap < until)
        until = now + cap;
    for (int j = 0; j < tp->nranks; j++) {
        if (tp->peers[j].pidfd < 0)
            continue;
        fds[n] = (struct pollfd){tp->peers[j].pidfd, POLLIN, 0};
        who[n++] = j;
    }
    int64_t left = until - now;
    if (left < 0)
        left = 0;
    struct timespec ts = {left / 1000000000, left % 1000000000};
    pthread_mutex_unlock(&tp->mu);
    /* Short sleeps are only short with a small timer slack (50 us by default). */
    int slack = sleepy && !tp->bells ? prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) : -1;
    if (slack > 1000)
        prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    int k = ppoll(fds, (nfds_t)n, &ts, NULL);
    if (slack > 1000)
        prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0);
    pthread_mutex_lock(&tp->mu);
    if (sleepy && tp->backoff_ns < hi)
        tp->backoff_ns *= 2;
    if (k <= 0)
        return;
    if (fds[0].revents) {
        uint64_t v;
        ssize_t r = read(tp->wakefd, &v, sizeof v); /* takes the whole count */
        (void)r;
    }
    for (int i = 1; i < n; i++) {
        int j = who[i];
        if (j < 0 || !fds[i].revents)
            continue;
        close(tp->peers[j].pidfd);
        tp->peers[j].pidfd = -1;
        tp->peers[j].dead_ns = pride_now_ns();
    }
}

/* ---- waiting ---- */

static int ofi_wait(struct pride_tp *tp, struct pride_xfer *const *xs, int n, int64_t deadline)
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
        if (deadline != 0 && pride_now_ns() >= deadline) {
            st = PRIDE_ERR_TIMEOUT;
            break;
        }
        if (!tp->polling) {
            tp->polling = 1;
            if (progress(tp) == 0 && deadline != 0)
                block(tp, deadline);
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

static void ofi_wake(struct pride_tp *tp)
{
    uint64_t one = 1;
    ssize_t r = write(tp->wakefd, &one, sizeof one);
    (void)r;
    pthread_cond_broadcast(&tp->cv);
}

/* ---- failure broadcast ---- */

/* Anything the provider still holds besides the standing error receive? */
static int holds_user_or_err_send(const struct pride_tp *tp)
{
    if (tp->pending.head)
        return 1;
    for (const struct ofi_op *op = tp->posted.head; op; op = op->next)
        if (op->kind != OFI_OP_ERR_RECV)
            return 1;
    return 0;
}

/* A large payload under way with peer j? */
static int payload_with(const struct pride_tp *tp, int j)
{
    for (const struct ofi_op *op = tp->posted.head; op; op = op->next)
        if ((op->kind == OFI_OP_SEND_PAYLOAD || op->kind == OFI_OP_RECV_PAYLOAD) &&
            op->peer == j)
            return 1;
    return 0;
}

static void err_send(struct pride_tp *tp, int j, const struct pride_frame_hdr *h,
                     const char *reason)
{
    struct ofi_op *op = ofi_op_new(tp);
    if (!op)
        return;
    op->kind = OFI_OP_ERR_SEND;
    op->peer = j;
    op->hdr = *h;
    memcpy(op->small, reason, h->len);
    op->iov[0] = (struct iovec){&op->hdr, HDR_LEN};
    op->iov[1] = (struct iovec){op->small, h->len};
    op->desc[0] = op->desc[1] = slab_desc(op);
    op->msg = (struct fi_msg_tagged){.msg_iov = op->iov,
                                     .desc = op->desc,
                                     .iov_count = h->len ? 2 : 1,
                                     .addr = tp->peers[j].addr,
                                     .tag = OFI_TAG_CTRL | (uint32_t)tp->rank,
                                     .context = &op->fctx};
    op_post(tp, op);
}

/* Tell every peer, give the callers' buffers back. Receives for frame headers are
   cancelled; a large payload under way is left to finish, and its peer is told only
   then (or at half time): cancelling such a transfer, or sending on its connection
   while it runs, has been seen to wedge tcp;ofi_rxm, whose endpoint then cannot even
   be closed safely. */
static void ofi_broadcast_error(struct pride_tp *tp, uint64_t seq, int status, const char *reason)
{
    pthread_mutex_lock(&tp->mu);
    if (tp->detached || !tp->ep) {
        pthread_mutex_unlock(&tp->mu);
        return;
    }
    tp->detached = 1;
    int st = detach_status(tp);
    if (!pride_ctx_status(tp->ctx))
        st = status;
    /* Work the provider never saw is simply dropped. */
    while (tp->pending.head) {
        struct ofi_op *op = tp->pending.head;
        if (op->x)
            part_done(tp, op->x, is_send(op->kind), st);
        op_free(tp, op);
    }
    size_t rl = strlen(reason);
    if (rl > PRIDE_FRAME_MAX_REASON)
        rl = PRIDE_FRAME_MAX_REASON;
    const struct ofi_seqslot *s = &tp->seqs[seq % OFI_SEQ_SLOTS];
    struct pride_frame_hdr h = {.magic = PRIDE_FRAME_MAGIC,
                                .version = PRIDE_PROTO_VERSION,
                                .kind = PRIDE_FRAME_ERROR,
                                .status = status,
                                .seq = seq,
                                .len = rl};
    if (s->valid && s->seq == seq)
        h.meta = s->meta;
    for (struct ofi_op *op = tp->posted.head; op; op = op->next) {
        if (op->kind != OFI_OP_RECV)
            continue;
        op->cancelled = 1;
        fi_cancel(&tp->ep->fid, &op->fctx);
    }
    for (int j = 0; j < tp->nranks; j++)
        tp->peers[j].told = j == tp->rank || tp->peers[j].dead_ns;
    int64_t deadline = pride_now_ns() + DETACH_NS, tell_by = deadline - DETACH_NS / 2;
    for (;;) {
        int64_t now = pride_now_ns();
        int untold = 0;
        for (int j = 0; j < tp->nranks; j++) {
            if (tp->peers[j].told)
                continue;
            if (payload_with(tp, j) && now < tell_by) {
                untold = 1;
                continue;
            }
            err_send(tp, j, &h, reason);
            tp->peers[j].told = 1;
        }
        if ((!untold && !holds_user_or_err_send(tp)) || now >= deadline)
            break;
        int64_t until = untold ? tell_by : deadline;
        if (!tp->polling) {
            tp->polling = 1;
            if (progress(tp) == 0)
                block(tp, until);
            tp->polling = 0;
            pthread_cond_broadcast(&tp->cv);
        } else {
            struct timespec ts = {until / 1000000000, until % 1000000000};
            pthread_cond_timedwait(&tp->cv, &tp->mu, &ts);
        }
    }
    if (holds_user_or_err_send(tp)) {
        /* The provider still holds user buffers (a transfer a dead or failed peer will
           never finish): closing the endpoint and its CQ is the only way to take them
           back. The context is failed for good; close() frees the rest. */
        fi_close(&tp->ep->fid);
        tp->ep = NULL;
        fi_close(&tp->cq->fid);
        tp->cq = NULL;
        tp->cq_fd = -1;
        while (tp->posted.head) {
            struct ofi_op *op = tp->posted.head;
            if (op->x)
                part_done(tp, op->x, is_send(op->kind), st);
            op_free(tp, op);
        }
    }
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
}

/* ---- memory registration ---- */

static int ofi_mem_reg(struct pride_tp *tp, void *buf, size_t len, void **mr)
{
    *mr = NULL;
    if (!tp->mr_local || !len)
        return PRIDE_OK;
    if (!buf)
        return PRIDE_ERR_INVALID;
    pthread_mutex_lock(&tp->mu);
    struct ofi_mr *m = NULL;
    int st = ofi_mr_get(tp, buf, len, 1, &m);
    pthread_mutex_unlock(&tp->mu);
    if (st == PRIDE_OK)
        *mr = m;
    return st;
}

static void ofi_mem_dereg(struct pride_tp *tp, void *mr)
{
    if (!mr)
        return;
    pthread_mutex_lock(&tp->mu);
    ofi_mr_unkeep(tp, mr);
    pthread_mutex_unlock(&tp->mu);
}

const struct pride_tp_ops pride_ofi_ops = {
    .size = sizeof(struct pride_tp_ops),
    .name = "ofi",
    .open = ofi_open,
    .close = ofi_close,
    .mem_reg = ofi_mem_reg,
    .mem_dereg = ofi_mem_dereg,
    .isend = ofi_isend,
    .irecv = ofi_irecv,
    .wait = ofi_wait,
    .wake = ofi_wake,
    .broadcast_error = ofi_broadcast_error,
};
