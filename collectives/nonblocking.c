/*
 * Non-blocking collectives: pride_iallreduce takes its place in the collective
 * order (a sequence number) when it is called, and a background worker thread per
 * context runs it as an ordinary blocking allreduce in that slot. The caller's
 * thread is free to compute; progress needs no help from it. Requests run one after
 * another in the order they were started; blocking collectives called meanwhile run
 * concurrently on the caller's thread (their frames carry other sequence numbers).
 */
#include <stdlib.h>

#include "coll.h"
#include "reduce_kernels.h"

struct pride_request {
    struct pride_request *next;
    pride_context_t *ctx;
    uint64_t seq;
    const void *sendbuf;
    void *recvbuf;
    size_t count;
    pride_dtype_t dtype;
    pride_op_t op;
    int status;
    int done;
};

struct pride_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pride_request *head, *tail;
    int stop;
};

static void *worker_main(void *arg)
{
    pride_context_t *ctx = arg;
    struct pride_worker *w = ctx->worker;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        struct pride_request *r = w->head;
        if (!r)
            break;
        w->head = r->next;
        if (!w->head)
            w->tail = NULL;
        int st;
        if (w->stop) {
            st = pride_error(ctx, PRIDE_ERR_ABORTED,
                             "pride_finalize was called with an iallreduce still queued");
        } else {
            pthread_mutex_unlock(&w->mu);
            coll_force_seq(r->seq);
            st = pride_allreduce(ctx, r->sendbuf, r->recvbuf, r->count, r->dtype, r->op);
            coll_force_seq_clear();
            pthread_mutex_lock(&w->mu);
        }
        r->status = st;
        r->done = 1;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void worker_stop(pride_context_t *ctx)
{
    struct pride_worker *w = ctx->worker;
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    ctx->worker = NULL;
}

/* The context's worker, started on first use; called with ctx->mu held. */
static struct pride_worker *worker_get(pride_context_t *ctx)
{
    if (ctx->worker)
        return ctx->worker;
    struct pride_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    ctx->worker = w;
    if (pthread_create(&w->thread, NULL, worker_main, ctx) != 0) {
        ctx->worker = NULL;
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    ctx->worker_stop = worker_stop;
    return w;
}

int pride_iallreduce(pride_context_t *ctx, const void *sendbuf, void *recvbuf, size_t count,
                     pride_dtype_t dtype, pride_op_t op, pride_request_t **req)
{
    if (!ctx || !req)
        return PRIDE_ERR_INVALID;
    if (pride_reduce_check(dtype, op) != PRIDE_OK)
        return pride_error(ctx, PRIDE_ERR_INVALID,
                           "pride_iallreduce: dtype %d with op %d is not a valid reduction",
                           (int)dtype, (int)op);
    if (count && (!sendbuf || !recvbuf))
        return pride_error(ctx, PRIDE_ERR_INVALID, "pride_iallreduce: NULL buffer with count %zu",
                           count);
    if (count > SIZE_MAX / 8)
        return pride_error(ctx, PRIDE_ERR_INVALID, "pride_iallreduce: count %zu is too large",
                           count);
    int st = pride_ctx_status(ctx);
    if (st)
        return st;
    struct pride_request *r = calloc(1, sizeof *r);
    if (!r)
        return PRIDE_ERR_NOMEM;
    *r = (struct pride_request){.ctx = ctx, .sendbuf = sendbuf, .recvbuf = recvbuf,
                                .count = count, .dtype = dtype, .op = op};
    pthread_mutex_lock(&ctx->mu);
    struct pride_worker *w = worker_get(ctx);
    if (!w) {
        pthread_mutex_unlock(&ctx->mu);
        free(r);
        return pride_error(ctx, PRIDE_ERR_NOMEM, "could not start the background worker");
    }
    /* the slot in the collective order is taken now, under the same lock as blocking calls */
    r->seq = ctx->next_seq++;
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = r;
    else
        w->head = r;
    w->tail = r;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_unlock(&ctx->mu);
    *req = r;
    return PRIDE_OK;
}

int pride_wait(pride_request_t *r)
{
    if (!r)
        return PRIDE_ERR_INVALID;
    struct pride_worker *w = r->ctx->worker;
    pthread_mutex_lock(&w->mu);
    while (!r->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    int st = r->status;
    free(r);
    return st;
}

int pride_test(pride_request_t *r, int *done)
{
    if (!r || !done)
        return PRIDE_ERR_INVALID;
    struct pride_worker *w = r->ctx->worker;
    pthread_mutex_lock(&w->mu);
    int d = r->done;
    pthread_mutex_unlock(&w->mu);
    *done = d;
    if (!d)
        return PRIDE_OK;
    int st = r->status;
    free(r);
    return st;
}
