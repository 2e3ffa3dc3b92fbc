/*
 * The tcp backend's data path. Each pair of ranks shares one stream socket; every
 * message is a 48-byte header and its payload, written with one sendmsg where the
 * kernel takes it. A receive posted before its frame arrives is filled in place, with
 * no copy; a frame that comes first waits in a per-peer queue. Small frames are read
 * through a staging buffer so a header and its payload cost one recv, large payloads
 * straight into the user's buffer.
 *
 * With PRIDE_CHECKSUM=crc32c a DATA frame's header carries its own CRC32C, checked
 * before any field is trusted, and a trailer carries the payload's, checked before
 * the receive completes: a corrupted frame fails the context, it is never delivered.
 *
 * All socket I/O runs under one mutex, by whichever thread is waiting (one polls in
 * epoll_wait, the others sleep on a condition variable): the collectives' threads
 * drive progress themselves, and nothing spins.
 */
#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "crc32c.h"
#include "tcp.h"

#define WAKE_ID UINT32_MAX

static void drop_refs(struct pride_tp *tp);

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

static void peer_mark_dead(struct pride_tp *tp, struct tcp_peer *p)
{
    if (p->dead || p->fd < 0)
        return;
    p->dead = 1;
    epoll_ctl(tp->epfd, EPOLL_CTL_DEL, p->fd, NULL);
}

/* Stop reading a peer whose frame belongs to another collective (its payload is never
   consumed); it can still be told why, so broadcast_error writes to it. */
static void peer_refuse(struct pride_tp *tp, struct tcp_peer *p)
{
    peer_mark_dead(tp, p);
    p->refused = 1;
}

/* writing: the failure came from a send (it names the send, not a receive) */
static void peer_lost(struct pride_tp *tp, struct tcp_peer *p, const char *what, int writing)
{
    int mid = p->rstate == TCP_R_PAYLOAD || p->rhdr_got > 0;
    peer_mark_dead(tp, p);
    /* A peer that leaves between frames with nothing owed either way has finished;
       only a later post to or from it fails. */
    if (tp->detached || (!mid && !p->posted_head && !p->sq_head))
        return;
    char desc[200] = "", m[128];
    const struct pride_xfer *w = writing && p->sq_head ? p->sq_head
                                 : p->posted_head      ? p->posted_head
                                                       : p->sq_head;
    if (mid) {
        pride_meta_describe(&p->rhdr.meta, m, sizeof m);
        snprintf(desc, sizeof desc, " in the middle of a frame of %s #%llu", m,
                 (unsigned long long)p->rhdr.seq);
    } else {
        pride_meta_describe(&w->meta, m, sizeof m);
        snprintf(desc, sizeof desc, " while this rank was %s message %u of %s #%llu",
                 w->is_send ? "sending" : "waiting for", (unsigned)w->tag, m,
                 (unsigned long long)w->seq);
    }
    tp_fail(tp, PRIDE_ERR_PEER, "rank %d %s%s (did it die or call pride_finalize early?)", p->rank,
            what, desc);
}

static void complete(struct pride_xfer *x, int st)
{
    x->status = st;
    x->complete = 1;
}

/* ---- unexpected frames ---- */

/* A frame that came before its receive, with room for its payload; NULL: no memory. */
static struct tcp_unexp *ux_new(struct pride_tp *tp, const struct pride_frame_hdr *h)
{
    struct tcp_unexp *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->hdr = *h;
    u->data = pride_buf_get(&tp->ctx->scratch, h->len, &u->cap);
    if (h->len && !u->data) {
        free(u);
        return NULL;
    }
    atomic_fetch_add(&tp->ctx->unexpected_messages, 1);
    atomic_fetch_add(&tp->ctx->unexpected_bytes, h->len);
    return u;
}

static void ux_free(struct pride_tp *tp, struct tcp_unexp *u)
{
    if (!u)
        return;
    pride_buf_put(&tp->ctx->scratch, u->data, u->cap);
    free(u);
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

/* First post of a sequence number: remember its meta and check frames that came early. */
static int seq_note(struct pride_tp *tp, const struct pride_xfer *x)
{
    struct tcp_seqslot *s = &tp->seqs[x->seq % TCP_SEQ_SLOTS];
    if (s->valid && s->seq == x->seq)
        return PRIDE_OK;
    s->valid = 1;
    s->seq = x->seq;
    s->meta = x->meta;
    tp->last_seq = x->seq;
    for (int j = 0; j < tp->nranks; j++)
        for (struct tcp_unexp *u = tp->peers[j].ux_head; u; u = u->next)
            if (u->hdr.seq == x->seq && meta_check(tp, j, &x->meta, &u->hdr) != PRIDE_OK)
                return PRIDE_ERR_MISMATCH;
    return PRIDE_OK;
}

static const struct pride_meta *seq_meta(struct pride_tp *tp, uint64_t seq)
{
    struct tcp_seqslot *s = &tp->seqs[seq % TCP_SEQ_SLOTS];
    return s->valid && s->seq == seq ? &s->meta : NULL;
}

/* ---- matching ---- */

static struct pride_xfer *posted_take(struct tcp_peer *p, uint64_t seq, uint32_t tag)
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

static void ux_append(struct tcp_peer *p, struct tcp_unexp *u)
{
    u->next = NULL;
    if (p->ux_tail)
        p->ux_tail->next = u;
    else
        p->ux_head = u;
    p->ux_tail = u;
}

static struct tcp_unexp *ux_take(struct tcp_peer *p, uint64_t seq, uint32_t tag)
{
    struct tcp_unexp **pp = &p->ux_head, *prev = NULL;
    for (struct tcp_unexp *u = p->ux_head; u; prev = u, pp = &u->next, u = u->next) {
        if (u->hdr.seq != seq || u->hdr.tag != tag)
            continue;
        *pp = u->next;
        if (p->ux_tail == u)
            p->ux_tail = prev;
        return u;
    }
    return NULL;
}

/* A frame for x has come: same collective and exactly the expected length? */
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

/* Deliver an unexpected frame into a posted receive. */
static void ux_deliver(struct pride_tp *tp, int peer, struct tcp_unexp *u, struct pride_xfer *x)
{
    int st = match_check(tp, peer, x, &u->hdr);
    if (st == PRIDE_OK && x->len)
        memcpy(x->buf, u->data, x->len);
    complete(x, st);
    ux_free(tp, u);
}

/* ---- reading ---- */

static void frame_start(struct pride_tp *tp, struct tcp_peer *p)
{
    struct pride_frame_hdr *h = &p->rhdr;
    char why[200];
    p->rx = NULL;
    p->rux = NULL;
    p->rdst = NULL;
    p->rgot = 0;
    p->rlen = 0;
    p->rcrc = 0;
    if (h->kind == PRIDE_FRAME_DATA && (tp->ctx->checksum || (h->flags & PRIDE_FRAME_F_CRC32C))) {
        struct pride_frame_hdr z = *h;
        z.status = 0;
        const char *bad = !(h->flags & PRIDE_FRAME_F_CRC32C)
                              ? "sent a frame without a checksum (set PRIDE_CHECKSUM=crc32c on "
                                "every rank; or the frame was corrupted)"
                          : crc32c(0, &z, sizeof z) != (uint32_t)h->status
                              ? "sent a frame header that was corrupted on the way"
                              : NULL;
        if (bad) {
            peer_mark_dead(tp, p);
            tp_fail(tp, PRIDE_ERR_PEER, "checksum mismatch from rank %d: it %s", p->rank, bad);
            return;
        }
    }
    if (pride_frame_check(h, why, sizeof why) != PRIDE_OK) {
        peer_mark_dead(tp, p);
        tp_fail(tp, PRIDE_ERR_PEER, "rank %d sent a malformed frame: %s", p->rank, why);
        return;
    }
    p->rlen = h->len;
    p->rstate = TCP_R_PAYLOAD;
    p->big = h->len >= TCP_STAGE_SIZE / 2;
    if (h->kind == PRIDE_FRAME_ERROR) {
        p->rdst = p->reason;
        return;
    }
    if (tp->dropped) /* nobody will take it: read it and throw it away */
        return;
    struct pride_xfer *x = posted_take(p, h->seq, h->tag);
    if (x) {
        if (match_check(tp, p->rank, x, h) != PRIDE_OK) {
            complete(x, PRIDE_ERR_MISMATCH);
            peer_refuse(tp, p);
            return;
        }
        p->rx = x;
        p->rdst = x->buf;
        return;
    }
    const struct pride_meta *m = seq_meta(tp, h->seq);
    if (m && meta_check(tp, p->rank, m, h) != PRIDE_OK) {
        peer_refuse(tp, p);
        return;
    }
    struct tcp_unexp *u = ux_new(tp, h);
    if (!u) {
        peer_mark_dead(tp, p);
        tp_fail(tp, PRIDE_ERR_NOMEM, "no memory for a %llu-byte frame from rank %d that came "
                "before its receive was posted", (unsigned long long)h->len, p->rank);
        return;
    }
    p->rux = u;
    p->rdst = u->data;
}

static void frame_done(struct pride_tp *tp, struct tcp_peer *p)
{
    struct pride_frame_hdr *h = &p->rhdr;
    pride_context_t *ctx = tp->ctx;
    atomic_fetch_add(&ctx->bytes_received, h->len);
    atomic_fetch_add(&ctx->messages_received, 1);
    p->rstate = TCP_R_HDR;
    p->rhdr_got = 0;
    if (h->kind == PRIDE_FRAME_ERROR) {
        p->reason[h->len] = 0;
        for (char *c = p->reason; *c; c++)
            if ((unsigned char)*c < 32 || (unsigned char)*c > 126)
                *c = '?';
        int st = h->status == PRIDE_ERR_MISMATCH ? PRIDE_ERR_MISMATCH : PRIDE_ERR_PEER;
        char m[160];
        pride_meta_describe(&h->meta, m, sizeof m);
        tp_fail(tp, st, "rank %d gave up on %s #%llu (%s): %s", p->rank, m,
                (unsigned long long)h->seq, pride_strerror(h->status), p->reason);
        return;
    }
    if (p->rx) {
        complete(p->rx, PRIDE_OK);
        p->rx = NULL;
        return;
    }
    struct tcp_unexp *u = p->rux;
    p->rux = NULL;
    if (!u)
        return;
    struct pride_xfer *x = posted_take(p, u->hdr.seq, u->hdr.tag);
    if (x) {
        ux_deliver(tp, p->rank, u, x);
        return;
    }
    /* its collective may have started while it was arriving */
    const struct pride_meta *m = seq_meta(tp, u->hdr.seq);
    if (m && meta_check(tp, p->rank, m, &u->hdr) != PRIDE_OK)
        peer_refuse(tp, p);
    ux_append(p, u);
}

/* The payload's trailer is in: does the payload match it? */
static int payload_crc_ok(struct pride_tp *tp, struct tcp_peer *p)
{
    uint32_t want = (uint32_t)p->rtrail[0] | (uint32_t)p->rtrail[1] << 8 |
                    (uint32_t)p->rtrail[2] << 16 | (uint32_t)p->rtrail[3] << 24;
    if (want == p->rcrc)
        return 1;
    const struct pride_frame_hdr *h = &p->rhdr;
    if (p->rx) {
        complete(p->rx, PRIDE_ERR_PEER);
        p->rx = NULL;
    }
    ux_free(tp, p->rux);
    p->rux = NULL;
    p->rstate = TCP_R_HDR;
    p->rhdr_got = 0;
    char m[160];
    pride_meta_describe(&h->meta, m, sizeof m);
    tp_fail(tp, PRIDE_ERR_PEER,
            "checksum mismatch from rank %d: the payload of %s #%llu (message %u, %llu bytes) "
            "was corrupted on the way",
            p->rank, m, (unsigned long long)h->seq, (unsigned)h->tag, (unsigned long long)h->len);
    return 0;
}

/* The whole payload is in: a checksummed frame still has its trailer to come. */
static void payload_done(struct pride_tp *tp, struct tcp_peer *p)
{
    if (p->rhdr.flags & PRIDE_FRAME_F_CRC32C) {
        p->rstate = TCP_R_TRAILER;
        p->rtrail_got = 0;
        return;
    }
    frame_done(tp, p);
}

/* n more payload bytes came, from src (already copied to where they belong). */
static void payload_in(struct pride_tp *tp, struct tcp_peer *p, const char *src, size_t n)
{
    if (p->rhdr.flags & PRIDE_FRAME_F_CRC32C)
        p->rcrc = crc32c(p->rcrc, src, n);
    p->rgot += n;
    if (p->rgot == p->rlen)
        payload_done(tp, p);
}

/* Consume bytes from the staging buffer into headers and payloads. */
static void stage_consume(struct pride_tp *tp, struct tcp_peer *p)
{
    while (p->stage_off < p->stage_len && !p->dead) {
        size_t avail = p->stage_len - p->stage_off;
        char *src = p->stage + p->stage_off;
        if (p->rstate == TCP_R_HDR) {
            size_t n = sizeof p->rhdr - p->rhdr_got;
            if (n > avail)
                n = avail;
            memcpy((char *)&p->rhdr + p->rhdr_got, src, n);
            p->rhdr_got += n;
            p->stage_off += n;
            if (p->rhdr_got == sizeof p->rhdr) {
                frame_start(tp, p);
                if (!p->dead && p->rstate == TCP_R_PAYLOAD && p->rlen == 0)
                    payload_done(tp, p);
            }
        } else if (p->rstate == TCP_R_PAYLOAD) {
            size_t n = p->rlen - p->rgot;
            if (n > avail)
                n = avail;
            if (p->rdst)
                memcpy(p->rdst + p->rgot, src, n);
            p->stage_off += n;
            payload_in(tp, p, src, n);
        } else {
            size_t n = sizeof p->rtrail - p->rtrail_got;
            if (n > avail)
                n = avail;
            memcpy(p->rtrail + p->rtrail_got, src, n);
            p->rtrail_got += n;
            p->stage_off += n;
            if (p->rtrail_got == sizeof p->rtrail && payload_crc_ok(tp, p))
                frame_done(tp, p);
        }
    }
    if (p->stage_off == p->stage_len)
        p->stage_off = p->stage_len = 0;
}

static void peer_read(struct pride_tp *tp, struct tcp_peer *p)
{
    for (int rounds = 0; rounds < 64 && !p->dead; rounds++) {
        ssize_t n;
        if (p->rstate == TCP_R_PAYLOAD && p->rdst && p->stage_len == 0 &&
            p->rlen - p->rgot >= TCP_STAGE_SIZE / 2) {
            n = tp->sys.recv(tp->sys.user, p->fd, p->rdst + p->rgot, p->rlen - p->rgot, 0);
            if (n > 0) {
                payload_in(tp, p, p->rdst + p->rgot, (size_t)n);
                continue;
            }
        } else {
            size_t want = TCP_STAGE_SIZE;
            if (p->big && p->rstate == TCP_R_HDR && p->stage_len == 0)
                want = sizeof p->rhdr - p->rhdr_got;
            n = tp->sys.recv(tp->sys.user, p->fd, p->stage, want, 0);
            if (n > 0) {
                p->stage_off = 0;
                p->stage_len = (size_t)n;
                stage_consume(tp, p);
                /* a short read emptied the socket: the next recv would only say
                   EAGAIN (epoll reports the socket again when more comes) */
                if ((size_t)n < want && p->stage_len == 0 && p->rstate == TCP_R_HDR)
                    return;
                continue;
            }
        }
        if (n == 0) {
            peer_lost(tp, p, "closed the connection", 0);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        char what[128];
        snprintf(what, sizeof what, "connection failed (%s)", strerror(errno));
        peer_lost(tp, p, what, 0);
        return;
    }
}

/* ---- writing ---- */

static void want_out(struct pride_tp *tp, struct tcp_peer *p, int on)
{
    if (p->want_out == on || p->dead)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.u32 = (uint32_t)p->rank};
    epoll_ctl(tp->epfd, EPOLL_CTL_MOD, p->fd, &ev);
    p->want_out = on;
}

static void peer_write(struct pride_tp *tp, struct tcp_peer *p)
{
    pride_context_t *ctx = tp->ctx;
    while (p->sq_head && (!p->dead || p->refused)) {
        struct pride_xfer *x = p->sq_head;
        const size_t hl = sizeof x->hdr;
        const size_t tl = x->hdr.flags & PRIDE_FRAME_F_CRC32C ? sizeof p->wtrail : 0;
        if (tl && x->off == 0) {
            uint32_t c = crc32c(0, x->buf, x->len);
            for (int i = 0; i < 4; i++)
                p->wtrail[i] = (uint8_t)(c >> (8 * i));
        }
        struct iovec iov[3];
        int n_iov = 0;
        if (x->off < hl) {
            iov[n_iov].iov_base = (char *)&x->hdr + x->off;
            iov[n_iov++].iov_len = hl - x->off;
        }
        size_t poff = x->off > hl ? x->off - hl : 0;
        if (x->len > poff) {
            iov[n_iov].iov_base = (char *)x->buf + poff;
            iov[n_iov++].iov_len = x->len - poff;
        }
        size_t toff = x->off > hl + x->len ? x->off - hl - x->len : 0;
        if (tl > toff) {
            iov[n_iov].iov_base = p->wtrail + toff;
            iov[n_iov++].iov_len = tl - toff;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
        ssize_t n = n_iov ? tp->sys.sendmsg(tp->sys.user, p->fd, &mh, MSG_NOSIGNAL) : 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                want_out(tp, p, 1);
                return;
            }
            char what[128];
            snprintf(what, sizeof what, "could not be sent to (%s)", strerror(errno));
            peer_read(tp, p); /* it may have said why it went: that comes first */
            peer_lost(tp, p, what, 1);
            return;
        }
        x->off += (size_t)n;
        if (x->off < hl + x->len + tl)
            continue;
        p->sq_head = x->next;
        if (!p->sq_head)
            p->sq_tail = NULL;
        x->next = NULL;
        atomic_fetch_add(&ctx->bytes_sent, x->len);
        atomic_fetch_add(&ctx->messages_sent, 1);
        atomic_fetch_add(&ctx->header_bytes_sent, hl);
        complete(x, PRIDE_OK);
    }
    want_out(tp, p, 0);
}

static void tell_if_failed(struct pride_tp *tp);

/* ---- posting ---- */

static int post_check(struct pride_tp *tp, struct pride_xfer *x)
{
    x->complete = 0;
    x->status = PRIDE_OK;
    x->next = NULL;
    x->off = 0;
    int st = pride_ctx_status(tp->ctx);
    if (st)
        drop_refs(tp);
    if (!st && tp->detached)
        st = PRIDE_ERR_PEER;
    if (!st && (x->peer < 0 || x->peer >= tp->nranks || (x->len && !x->buf)))
        st = PRIDE_ERR_INVALID;
    if (!st)
        st = seq_note(tp, x);
    if (st)
        complete(x, st);
    return st;
}

static int tcp_isend(struct pride_tp *tp, struct pride_xfer *x)
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
    if (tp->ctx->checksum && x->peer != tp->rank) {
        x->hdr.flags = PRIDE_FRAME_F_CRC32C;
        x->hdr.status = (int32_t)crc32c(0, &x->hdr, sizeof x->hdr);
    }
    struct tcp_peer *p = &tp->peers[x->peer];
    if (x->peer == tp->rank) { /* to itself: hand over in memory */
        struct pride_xfer *r = posted_take(p, x->seq, x->tag);
        if (r) {
            st = match_check(tp, tp->rank, r, &x->hdr);
            if (!st && x->len)
                memcpy(r->buf, x->buf, x->len);
            complete(r, st);
        } else {
            struct tcp_unexp *u = ux_new(tp, &x->hdr);
            if (!u) {
                st = PRIDE_ERR_NOMEM;
            } else {
                if (x->len)
                    memcpy(u->data, x->buf, x->len);
                ux_append(p, u);
            }
        }
        complete(x, st);
        pthread_cond_broadcast(&tp->cv);
        goto out;
    }
    if (p->dead) {
        char m[128];
        pride_meta_describe(&x->meta, m, sizeof m);
        st = tp_fail(tp, PRIDE_ERR_PEER, "%s #%llu cannot send to rank %d: its connection is gone",
                     m, (unsigned long long)x->seq, x->peer);
        complete(x, st);
        goto out;
    }
    if (p->sq_tail)
        p->sq_tail->next = x;
    else
        p->sq_head = x;
    p->sq_tail = x;
    if (p->sq_head == x)
        peer_write(tp, p);
out:
    tell_if_failed(tp);
    pthread_mutex_unlock(&tp->mu);
    return st;
}

static int tcp_irecv(struct pride_tp *tp, struct pride_xfer *x)
{
    pthread_mutex_lock(&tp->mu);
    int st = post_check(tp, x);
    if (st)
        goto out;
    struct tcp_peer *p = &tp->peers[x->peer];
    struct tcp_unexp *u = ux_take(p, x->seq, x->tag);
    if (u) {
        ux_deliver(tp, x->peer, u, x);
        st = x->status;
        goto out;
    }
    if (p->dead) {
        char m[128];
        pride_meta_describe(&x->meta, m, sizeof m);
        st = tp_fail(tp, PRIDE_ERR_PEER,
                     "%s #%llu cannot receive from rank %d: its connection is gone", m,
                     (unsigned long long)x->seq, x->peer);
        complete(x, st);
        goto out;
    }
    if (p->posted_tail)
        p->posted_tail->next = x;
    else
        p->posted_head = x;
    p->posted_tail = x;
out:
    tell_if_failed(tp);
    pthread_mutex_unlock(&tp->mu);
    return st;
}

/* ---- waiting ---- */

static void progress(struct pride_tp *tp, const struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        uint32_t id = evs[i].data.u32;
        if (id == WAKE_ID) {
            uint64_t v;
            while (read(tp->wakefd, &v, sizeof v) > 0)
                ;
            continue;
        }
        if (id >= (uint32_t)tp->nranks)
            continue;
        struct tcp_peer *p = &tp->peers[id];
        if (p->dead)
            continue;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            peer_read(tp, p);
        if (!p->dead && (evs[i].events & EPOLLOUT))
            peer_write(tp, p);
    }
}

static int tcp_wait(struct pride_tp *tp, struct pride_xfer *const *xs, int n, int64_t deadline)
{
    int st;
    struct epoll_event evs[64];
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
            /* a real deadline (1 ends a one-pass poll, which is no failure) */
            st = deadline > 1 ? pride_fail(tp->ctx, PRIDE_ERR_TIMEOUT) : PRIDE_ERR_TIMEOUT;
            break;
        }
        if (!tp->polling) {
            tp->polling = 1;
            pthread_mutex_unlock(&tp->mu);
            int ms = deadline == 0 ? 0 : (int)((left + 999999) / 1000000);
            int k = epoll_wait(tp->epfd, evs, 64, ms);
            pthread_mutex_lock(&tp->mu);
            if (k > 0)
                progress(tp, evs, k);
            tell_if_failed(tp);
            tp->polling = 0;
            pthread_cond_broadcast(&tp->cv);
            if (deadline == 0) {
                deadline = 1; /* one pass only */
            }
        } else {
            if (deadline == 0) {
                st = PRIDE_ERR_TIMEOUT;
                break;
            }
            struct timespec ts = {deadline / 1000000000, deadline % 1000000000};
            pthread_cond_timedwait(&tp->cv, &tp->mu, &ts);
        }
    }
    if (st && pride_ctx_status(tp->ctx))
        drop_refs(tp);
    pthread_mutex_unlock(&tp->mu);
    return st;
}

static void tcp_wake(struct pride_tp *tp)
{
    uint64_t one = 1;
    ssize_t r = write(tp->wakefd, &one, sizeof one);
    (void)r;
    pthread_cond_broadcast(&tp->cv);
}

/* Write a whole small frame on a socket, waiting for room until the deadline; best
   effort. */
static void write_small(int fd, const void *a, size_t alen, const void *b, size_t blen,
                        int64_t deadline)
{
    struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
    size_t total = alen + blen, done = 0;
    while (done < total) {
        struct iovec v[2];
        int k = 0;
        if (done < alen)
            v[k++] = (struct iovec){(char *)iov[0].iov_base + done, alen - done};
        size_t boff = done > alen ? done - alen : 0;
        if (blen > boff)
            v[k++] = (struct iovec){(char *)iov[1].iov_base + boff, blen - boff};
        struct msghdr mh = {.msg_iov = v, .msg_iovlen = (size_t)k};
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return;
        int64_t left = deadline - pride_now_ns();
        if (left <= 0)
            return;
        struct pollfd pfd = {fd, POLLOUT, 0};
        poll(&pfd, 1, (int)(left / 1000000 + 1));
    }
}

/* A send partly written when its caller gives up: finish the frame from the caller's
   buffer, which is still alive (drop_refs runs under the lock before any caller can
   return), reading from the peer meanwhile. 1 when finished. */
static int send_finish(struct pride_tp *tp, struct tcp_peer *p, int64_t deadline)
{
    for (;;) {
        peer_write(tp, p);
        int64_t left = deadline - pride_now_ns();
        int gone = p->dead && !p->refused;
        if (!p->sq_head || gone || left <= 0)
            return !p->sq_head && !gone;
        struct pollfd pfd = {p->fd, POLLOUT | POLLIN, 0};
        if (poll(&pfd, 1, (int)(left / 1000000 + 1)) == 1 && (pfd.revents & POLLIN) && !p->dead)
            peer_read(tp, p);
    }
}

/* The callers are giving up (the context failed or was aborted, or a wait ran out of
   time): from here on no byte is read into or written from a caller's buffer, and no
   posted record is touched again, since its owner may free it as soon as it returns.
   A frame half read is read on and thrown away. A frame half written is finished from
   its buffer now, while the caller is still blocked (never padded: the peer would take
   padding for data); one that cannot be finished within half a second costs the
   connection, so the peer sees it end instead of a wrong payload. Called with tp->mu held. */
static void drop_refs(struct pride_tp *tp)
{
    if (tp->dropped)
        return;
    tp->dropped = 1;
    int64_t deadline = pride_now_ns() + INT64_C(500000000);
    for (int j = 0; j < tp->nranks; j++) {
        struct tcp_peer *p = &tp->peers[j];
        p->posted_head = p->posted_tail = NULL;
        p->rx = NULL;
        if (p->rstate == TCP_R_PAYLOAD)
            p->rdst = NULL;
    }
    for (int j = 0; j < tp->nranks; j++) {
        struct tcp_peer *p = &tp->peers[j];
        struct pride_xfer *x = p->sq_head;
        if (x && x->off > 0 && (!p->dead || p->refused)) {
            x->next = NULL;
            p->sq_tail = x;
            if (!send_finish(tp, p, deadline)) {
                shutdown(p->fd, SHUT_RDWR);
                p->cut = 1;
            }
        }
        p->sq_head = p->sq_tail = NULL;
    }
}

/* Drop all posted work and tell every peer this rank failed collective seq; called
   with tp->mu held, once. Half a second in all, however many peers are slow. */
static void tell_peers(struct pride_tp *tp, uint64_t seq, int status, const char *reason)
{
    int64_t deadline = pride_now_ns() + INT64_C(500000000);
    if (tp->detached)
        return;
    tp->detached = 1;
    size_t rl = strlen(reason);
    if (rl > PRIDE_FRAME_MAX_REASON)
        rl = PRIDE_FRAME_MAX_REASON;
    const struct pride_meta *m = seq_meta(tp, seq);
    struct pride_frame_hdr h = {.magic = PRIDE_FRAME_MAGIC,
                                .version = PRIDE_PROTO_VERSION,
                                .kind = PRIDE_FRAME_ERROR,
                                .status = status,
                                .seq = seq,
                                .len = rl};
    if (m)
        h.meta = *m;
    drop_refs(tp);
    for (int j = 0; j < tp->nranks; j++) {
        struct tcp_peer *p = &tp->peers[j];
        if (p->fd < 0 || (p->dead && !p->refused))
            continue;
        if (!p->cut)
            write_small(p->fd, &h, sizeof h, reason, rl, deadline);
    }
    pthread_cond_broadcast(&tp->cv);
}

static void tcp_broadcast_error(struct pride_tp *tp, uint64_t seq, int status, const char *reason)
{
    pthread_mutex_lock(&tp->mu);
    tell_peers(tp, seq, status, reason);
    pthread_mutex_unlock(&tp->mu);
}

/* The context failed while this rank was making progress (a peer's ERROR frame, a
   lost connection, a bad frame): pass it on now, called with tp->mu held where no
   frame is half processed. A rank whose calls had all completed would otherwise
   tell nobody, and its peers would wait for it until their deadline. */
static void tell_if_failed(struct pride_tp *tp)
{
    int st = atomic_load(&tp->ctx->failed);
    if (!st || tp->detached)
        return;
    char reason[PRIDE_FRAME_MAX_REASON];
    pthread_mutex_lock(&tp->ctx->mu);
    snprintf(reason, sizeof reason, "rank %d: %.480s", tp->rank, tp->ctx->last_error);
    pthread_mutex_unlock(&tp->ctx->mu);
    tell_peers(tp, tp->last_seq, st, reason);
}

/* ---- open / close ---- */

static ssize_t sys_sendmsg(void *user, int fd, const struct msghdr *m, int flags)
{
    (void)user;
    return sendmsg(fd, m, flags);
}

static ssize_t sys_recv(void *user, int fd, void *buf, size_t len, int flags)
{
    (void)user;
    return recv(fd, buf, len, flags);
}

/* Say goodbye gracefully: shut the sending side of every connection, then read and
   drop what peers still send until each shuts its side too (or a second passes).
   Closing a socket with unread data makes the kernel reset the connection and throw
   away what this rank still had queued for the peer, its last ERROR frame included. */
static void tcp_linger(struct pride_tp *tp)
{
    int n = 0;
    struct pollfd *pfd = calloc((size_t)tp->nranks, sizeof *pfd);
    char *sink = malloc(TCP_STAGE_SIZE);
    if (!pfd || !sink)
        goto out;
    for (int j = 0; j < tp->nranks; j++)
        if (tp->peers[j].fd >= 0 && shutdown(tp->peers[j].fd, SHUT_WR) == 0)
            pfd[n++] = (struct pollfd){tp->peers[j].fd, POLLIN, 0};
    int64_t deadline = pride_now_ns() + INT64_C(1000000000);
    for (int open = n; open > 0;) {
        int64_t left = deadline - pride_now_ns();
        if (left <= 0 || poll(pfd, (nfds_t)n, (int)(left / 1000000 + 1)) <= 0)
            break;
        for (int i = 0; i < n; i++) {
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            ssize_t r;
            while ((r = recv(pfd[i].fd, sink, TCP_STAGE_SIZE, MSG_DONTWAIT)) > 0)
                ;
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                pfd[i].fd = -1; /* poll skips it */
                open--;
            }
        }
    }
out:
    free(pfd);
    free(sink);
}

static void tcp_close(struct pride_tp *tp)
{
    if (!tp)
        return;
    if (tp->peers)
        tcp_linger(tp);
    for (int j = 0; tp->peers && j < tp->nranks; j++) {
        struct tcp_peer *p = &tp->peers[j];
        if (p->fd >= 0)
            close(p->fd);
        for (struct tcp_unexp *u = p->ux_head, *n; u; u = n) {
            n = u->next;
            ux_free(tp, u);
        }
        ux_free(tp, p->rux);
        free(p->stage);
    }
    free(tp->peers);
    if (tp->epfd >= 0)
        close(tp->epfd);
    if (tp->wakefd >= 0)
        close(tp->wakefd);
    pthread_cond_destroy(&tp->cv);
    pthread_mutex_destroy(&tp->mu);
    free(tp);
}

static int tcp_open(pride_context_t *ctx, struct pride_tp **out)
{
    struct pride_tp *tp = calloc(1, sizeof *tp);
    if (!tp)
        return pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for the tcp transport");
    tp->ctx = ctx;
    tp->rank = ctx->rank;
    tp->nranks = ctx->nranks;
    tp->epfd = tp->wakefd = -1;
    tp->sys = (struct tcp_sys){.sendmsg = sys_sendmsg, .recv = sys_recv};
    pthread_mutex_init(&tp->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&tp->cv, &ca);
    pthread_condattr_destroy(&ca);
    int st;
    tp->peers = calloc((size_t)tp->nranks, sizeof *tp->peers);
    if (!tp->peers) {
        st = pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for %d peers", tp->nranks);
        goto fail;
    }
    for (int j = 0; j < tp->nranks; j++) {
        tp->peers[j].fd = -1;
        tp->peers[j].rank = j;
    }
    tp->epfd = epoll_create1(EPOLL_CLOEXEC);
    tp->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (tp->epfd < 0 || tp->wakefd < 0) {
        st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = WAKE_ID};
    epoll_ctl(tp->epfd, EPOLL_CTL_ADD, tp->wakefd, &ev);
    st = tp->nranks > 1 ? tcp_connect_all(tp) : PRIDE_OK;
    if (st)
        goto fail;
    for (int j = 0; j < tp->nranks; j++) {
        struct tcp_peer *p = &tp->peers[j];
        if (j == tp->rank)
            continue;
        p->stage = malloc(TCP_STAGE_SIZE);
        if (!p->stage) {
            st = pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for receive buffers");
            goto fail;
        }
        ev = (struct epoll_event){.events = EPOLLIN, .data.u32 = (uint32_t)j};
        if (epoll_ctl(tp->epfd, EPOLL_CTL_ADD, p->fd, &ev) != 0) {
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "epoll_ctl: %s", strerror(errno));
            goto fail;
        }
    }
    *out = tp;
    return PRIDE_OK;
fail:
    tcp_close(tp);
    return st;
}

static int tcp_mem_reg(struct pride_tp *tp, void *buf, size_t len, void **mr)
{
    (void)tp;
    (void)buf;
    (void)len;
    *mr = NULL;
    return PRIDE_OK;
}

static void tcp_mem_dereg(struct pride_tp *tp, void *mr)
{
    (void)tp;
    (void)mr;
}

const struct pride_tp_ops pride_tcp_ops = {
    .size = sizeof(struct pride_tp_ops),
    .name = "tcp",
    .open = tcp_open,
    .close = tcp_close,
    .mem_reg = tcp_mem_reg,
    .mem_dereg = tcp_mem_dereg,
    .isend = tcp_isend,
    .irecv = tcp_irecv,
    .wait = tcp_wait,
    .wake = tcp_wake,
    .broadcast_error = tcp_broadcast_error,
};
