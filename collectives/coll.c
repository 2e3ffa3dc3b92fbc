/*
 * The frame of every collective call: a sequence number, the arguments every peer
 * must agree on (stamped on each frame and checked by the receiver), one deadline
 * for the whole call, and on failure a word to every peer so nobody waits for a rank
 * that has given up.
 */
#include "coll.h"

#include <stdio.h>
#include <string.h>

uint64_t coll_take_seq(pride_context_t *ctx)
{
    pthread_mutex_lock(&ctx->mu);
    uint64_t s = ctx->next_seq++;
    pthread_mutex_unlock(&ctx->mu);
    return s;
}

int coll_begin_seq(struct coll *c, pride_context_t *ctx, uint64_t seq, enum pride_coll_kind kind,
                   int dtype, int op, size_t count, int root)
{
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    c->tp = ctx->tp;
    c->ops = ctx->tp_ops;
    c->seq = seq;
    c->rank = ctx->rank;
    c->nranks = ctx->nranks;
    c->meta.coll = (uint8_t)kind;
    c->meta.dtype = (uint8_t)dtype;
    c->meta.op = (uint8_t)op;
    c->meta.root = root;
    c->meta.count = count;
    c->deadline_ns = pride_deadline_ns(ctx->timeout_ms);
    int st = pride_ctx_status(ctx);
    if (st) {
        /* keep the sentence that explains the first failure; say the context is dead */
        if (st == PRIDE_ERR_ABORTED)
            pride_error(ctx, st, "%s on rank %d: the context was aborted", pride_coll_name(kind),
                        ctx->rank);
        return st;
    }
    return PRIDE_OK;
}

static _Thread_local int forced;
static _Thread_local uint64_t forced_seq;

void coll_force_seq(uint64_t seq)
{
    forced = 1;
    forced_seq = seq;
}

void coll_force_seq_clear(void)
{
    forced = 0;
}

int coll_begin(struct coll *c, pride_context_t *ctx, enum pride_coll_kind kind, int dtype, int op,
               size_t count, int root)
{
    if (forced) {
        forced = 0;
        return coll_begin_seq(c, ctx, forced_seq, kind, dtype, op, count, root);
    }
    int st = pride_ctx_status(ctx);
    if (st)
        return coll_begin_seq(c, ctx, 0, kind, dtype, op, count, root);
    return coll_begin_seq(c, ctx, coll_take_seq(ctx), kind, dtype, op, count, root);
}

void *coll_scratch(struct coll *c, size_t bytes, size_t *cap)
{
    return pride_buf_get(&c->ctx->scratch, bytes, cap);
}

void coll_scratch_put(struct coll *c, void *p, size_t cap)
{
    pride_buf_put(&c->ctx->scratch, p, cap);
}

int coll_end(struct coll *c, int st)
{
    if (st == PRIDE_OK || st == PRIDE_ERR_INVALID)
        return st;
    pride_context_t *ctx = c->ctx;
    int first = pride_fail(ctx, st);
    if (c->tp && c->ops->broadcast_error) {
        char m[160], reason[PRIDE_FRAME_MAX_REASON];
        pride_meta_describe(&c->meta, m, sizeof m);
        snprintf(reason, sizeof reason, "rank %d: %.480s", ctx->rank, ctx->last_error);
        c->ops->broadcast_error(c->tp, c->seq, first, reason);
    }
    return first;
}

static void xfer_fill(struct coll *c, struct pride_xfer *x, int peer, uint32_t tag, const void *buf,
                      size_t len)
{
    memset(x, 0, sizeof *x);
    x->peer = peer;
    x->seq = c->seq;
    x->tag = tag;
    x->meta = c->meta;
    x->buf = (void *)buf;
    x->len = len;
}

int coll_isend(struct coll *c, struct pride_xfer *x, int peer, uint32_t tag, const void *buf,
               size_t len)
{
    xfer_fill(c, x, peer, tag, buf, len);
    x->is_send = 1;
    return c->ops->isend(c->tp, x);
}

int coll_irecv(struct coll *c, struct pride_xfer *x, int peer, uint32_t tag, void *buf, size_t len)
{
    xfer_fill(c, x, peer, tag, buf, len);
    return c->ops->irecv(c->tp, x);
}

int coll_wait(struct coll *c, struct pride_xfer **xs, int n)
{
    int st = c->ops->wait(c->tp, (struct pride_xfer *const *)xs, n, c->deadline_ns);
    if (st == PRIDE_ERR_TIMEOUT) {
        char m[160];
        pride_meta_describe(&c->meta, m, sizeof m);
        const struct pride_xfer *late = NULL;
        for (int i = 0; i < n && !late; i++)
            if (xs[i] && !xs[i]->complete)
                late = xs[i];
        int is_send = late && late->is_send;
        pride_error(c->ctx, st, "rank %d: %s #%llu timed out after %d ms %s rank %d (message %u)",
                    c->rank, m, (unsigned long long)c->seq, c->ctx->timeout_ms,
                    is_send ? "sending to" : "waiting for", late ? late->peer : -1,
                    late ? (unsigned)late->tag : 0u);
    }
    return st;
}
