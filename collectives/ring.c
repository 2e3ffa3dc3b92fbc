/*
 * Ring reduce-scatter and allgather (and allreduce, the one then the other), chunked
 * and pipelined: the bandwidth-optimal algorithm for large vectors.
 *
 * The vector is cut into P blocks. In reduce-scatter step s (0 .. P-2) rank r sends
 * block r-s-1 to its right neighbour and receives block r-s-2 from its left one,
 * adding its own contribution; after P-1 steps rank r holds block r reduced over all
 * ranks (each block's sum is made in one place, so every rank ends with the same
 * bits). Allgather step s sends block r-s and receives block r-s-1, filling in the
 * others. Cost: 2(P-1) steps, 2S(P-1)/P bytes sent per rank.
 *
 * Each block is cut into C chunks of at most ALGO_XCHG_CHUNK_BYTES; a (step, chunk)
 * pair is an "item", numbered i = step*C + chunk, which is also its tag. Items are
 * reduced in order, and the moment item i is done its successor (i + C, the next step
 * of the same chunk) goes to the right neighbour: many chunks are on the wire while
 * one is reduced. Blocks up to 1 MiB go whole: every rank sends and receives at once
 * anyway, and on loopback each extra message costs a wake-up more than the overlap
 * it buys (measured: 1 MiB on 4 ranks took 1.5 ms in 64 KiB chunks, 1.0 ms whole).
 *
 * Ranks do not run in step (4 processes on 2 cores take turns), so a frame must find
 * its receive already posted, or the transport has to buffer and copy it. Receives
 * are therefore posted as early as their memory allows: out of place, reduce-scatter
 * data lands straight in the output (where its partial sum is made and sent from),
 * so every such receive is posted at once; in place it lands in a pool of RING_POOL
 * chunk slots. An allgather chunk lands straight in the output, as soon as the
 * reduce-scatter send that used the same memory has left. First-step sends, whose
 * data is ready at once, run only ALGO_WINDOW chunks ahead of this rank's progress:
 * the neighbour may not have entered the collective yet. Reductions read the
 * received chunk while it is still in cache and write the output (reduce_apply3);
 * nothing else is copied.
 */
#include <stdlib.h>

#include "algos.h"
#include "reduce_kernels.h"

/* Chunk slots for in-place reduce-scatter receives. */
#define RING_POOL 32

struct ring {
    struct coll *c;
    pride_dtype_t dt;
    pride_op_t op;
    size_t es;
    int P, r;
    size_t count;   /* whole vector, elements */
    const char *in; /* reduce-scatter input: the whole vector */
    char *out;      /* the whole vector (allreduce, allgather), or NULL */
    char *own;      /* where this rank's block ends */
    int rs_steps;   /* P-1 with a reduce-scatter phase, else 0 */
    int ag_steps;   /* P-1 with an allgather phase, else 0 */
    int direct;     /* reduce-scatter data lands in out (out of place) */
    char *pool;     /* otherwise: NS chunk slots */
    size_t pool_cap;
    size_t NS;
    size_t ce, C, N; /* elements per chunk, chunks per block, items */
    size_t done;     /* items processed */
    size_t rpost;    /* next receive to post */
    size_t s0post;   /* next first-step send to post */
    struct pride_xfer *sx, *rx; /* one of each per item */
};

static int ring_mod(int a, int P)
{
    return ((a % P) + P) % P;
}

static int ring_is_rs(const struct ring *g, size_t i)
{
    return i / g->C < (size_t)g->rs_steps;
}

/* Step within the item's phase. */
static int ring_step(const struct ring *g, size_t i)
{
    int s = (int)(i / g->C);
    return ring_is_rs(g, i) ? s : s - g->rs_steps;
}

static int ring_is_last_rs(const struct ring *g, size_t i)
{
    return ring_is_rs(g, i) && ring_step(g, i) == g->P - 2;
}

static int ring_send_block(const struct ring *g, size_t i)
{
    return ring_mod(g->r - ring_step(g, i) - (ring_is_rs(g, i) ? 1 : 0), g->P);
}

static int ring_recv_block(const struct ring *g, size_t i)
{
    return ring_mod(g->r - ring_step(g, i) - (ring_is_rs(g, i) ? 2 : 1), g->P);
}

/* Element offset of chunk k inside block b, and its length (the last chunks of a
   short block may be empty). */
static size_t ring_chunk_off(const struct ring *g, int b, size_t k)
{
    size_t bl = algo_block_len(g->count, g->P, b);
    return k * g->ce < bl ? k * g->ce : bl;
}

static size_t ring_chunk_len(const struct ring *g, int b, size_t k)
{
    size_t bl = algo_block_len(g->count, g->P, b), off = ring_chunk_off(g, b, k);
    return bl - off < g->ce ? bl - off : g->ce;
}

/* Byte address of chunk k of block b in a whole vector. */
static const char *ring_at(const struct ring *g, const char *base, int b, size_t k)
{
    return base + (algo_block_off(g->count, g->P, b) + ring_chunk_off(g, b, k)) * g->es;
}

/* Where item i's data arrives. */
static char *ring_land(const struct ring *g, size_t i)
{
    size_t k = i % g->C;
    int b = ring_recv_block(g, i);
    if (ring_is_rs(g, i) && !g->direct)
        return g->pool + (i % g->NS) * g->ce * g->es;
    return (char *)ring_at(g, g->out, b, k);
}

/* Where item i's data is once processed: what item i+C sends. */
static const char *ring_result(const struct ring *g, size_t i)
{
    if (ring_is_last_rs(g, i))
        return g->own + ring_chunk_off(g, g->r, i % g->C) * g->es;
    return ring_land(g, i);
}

/* Non-blocking: has x completed (making progress on the way)? A failure shows in the
   next blocking wait. */
static int ring_sent(struct ring *g, struct pride_xfer *x)
{
    struct pride_xfer *xs[1] = {x};
    return g->c->ops->wait(g->c->tp, xs, 1, 0) == PRIDE_OK;
}

static int ring_post_send(struct ring *g, size_t i)
{
    size_t k = i % g->C;
    int b = ring_send_block(g, i);
    const char *src;
    if (i >= g->C)
        src = ring_result(g, i - g->C);
    else if (g->rs_steps)
        src = ring_at(g, g->in, b, k);
    else
        src = g->own + ring_chunk_off(g, b, k) * g->es;
    return coll_isend(g->c, &g->sx[i], (g->r + 1) % g->P, (uint32_t)i, src,
                      ring_chunk_len(g, b, k) * g->es);
}

/* The send that last used the memory item j lands in, or NULL: in the pool, the
   partial sum of item j - NS (sent as item j - NS + C); in the output, for an
   allgather item of an allreduce, the reduce-scatter item of the same block and
   chunk (whose partial sum was sent from there, or, in place, its input). */
static struct pride_xfer *ring_blocker(const struct ring *g, size_t j)
{
    if (ring_is_rs(g, j)) {
        if (g->direct || j < g->NS || ring_is_last_rs(g, j - g->NS))
            return NULL;
        return &g->sx[j - g->NS + g->C];
    }
    int s = ring_step(g, j);
    if (!g->rs_steps || (s == 0 && g->direct)) /* step 0 sent from the input */
        return NULL;
    return &g->sx[(size_t)s * g->C + j % g->C];
}

/* First-step sends go out paced (s0post); item j's send otherwise once j - C is done. */
static int ring_send_posted(const struct ring *g, size_t j)
{
    return j < g->C ? j < g->s0post : j - g->C < g->done;
}

static int ring_post_recv(struct ring *g, size_t j)
{
    int b = ring_recv_block(g, j);
    return coll_irecv(g->c, &g->rx[j], (g->r + g->P - 1) % g->P, (uint32_t)j, ring_land(g, j),
                      ring_chunk_len(g, b, j % g->C) * g->es);
}

/* Post every receive whose memory is free now (in order), and the first-step sends
   this rank's progress allows. A receive needs the pool slot's previous item
   processed and the send that used its memory complete. */
static int ring_post_ready(struct ring *g)
{
    int st = PRIDE_OK;
    while (st == PRIDE_OK && g->s0post < g->C && g->s0post < g->done + ALGO_WINDOW)
        st = ring_post_send(g, g->s0post++);
    while (st == PRIDE_OK && g->rpost < g->N) {
        size_t j = g->rpost;
        if (ring_is_rs(g, j) && !g->direct && j >= g->NS && j - g->NS >= g->done)
            break;
        struct pride_xfer *x = ring_blocker(g, j);
        if (x && (!ring_send_posted(g, (size_t)(x - g->sx)) || !ring_sent(g, x)))
            break;
        st = ring_post_recv(g, g->rpost++);
    }
    return st;
}

/* Item i arrived: fold this rank's contribution into the partial sum. */
static void ring_process(struct ring *g, size_t i)
{
    if (!ring_is_rs(g, i))
        return;
    size_t k = i % g->C;
    int b = ring_recv_block(g, i);
    size_t n = ring_chunk_len(g, b, k);
    const char *mine = ring_at(g, g->in, b, k);
    char *dst = (char *)ring_result(g, i);
    reduce_apply3(dst, ring_land(g, i), mine, n, g->dt, g->op);
    if (ring_is_last_rs(g, i) && g->op == PRIDE_AVG)
        pride_avg_finish(dst, n, g->dt, g->P);
}

static int ring_run(struct ring *g)
{
    struct coll *c = g->c;
    g->P = c->nranks;
    g->r = c->rank;
    g->es = pride_dtype_size(g->dt);
    size_t maxlen = algo_block_len(g->count, g->P, 0);
    g->ce = algo_xchg_chunk_elems(maxlen * g->es, g->es);
    g->C = algo_nchunks(maxlen, g->ce);
    g->N = (size_t)(g->rs_steps + g->ag_steps) * g->C;
    size_t bytes = g->count * g->es, rs_items = (size_t)g->rs_steps * g->C;
    g->direct = g->out && (!g->in || !algo_overlap(g->in, bytes, g->out, bytes));
    int st = PRIDE_OK;
    g->sx = calloc(g->N, sizeof *g->sx);
    g->rx = calloc(g->N, sizeof *g->rx);
    struct pride_xfer **w = calloc(g->N, sizeof *w);
    if (rs_items && !g->direct) {
        g->NS = rs_items < RING_POOL ? rs_items : RING_POOL;
        g->pool = coll_scratch(c, g->NS * g->ce * g->es, &g->pool_cap);
    }
    if (!g->sx || !g->rx || !w || (g->NS && !g->pool)) {
        st = pride_error(c->ctx, PRIDE_ERR_NOMEM, "ring %s of %zu elements: out of memory",
                         pride_coll_name(c->meta.coll), g->count);
        goto out;
    }
    st = ring_post_ready(g);
    for (size_t i = 0; i < g->N && st == PRIDE_OK; i++) {
        if (g->rpost == i) { /* its memory is not free yet: wait for that */
            struct pride_xfer *x = ring_blocker(g, i);
            st = x ? coll_wait(c, &x, 1) : PRIDE_OK;
            if (st == PRIDE_OK)
                st = ring_post_recv(g, g->rpost++);
        }
        struct pride_xfer *x = &g->rx[i];
        if (st == PRIDE_OK)
            st = coll_wait(c, &x, 1);
        if (st != PRIDE_OK)
            break;
        ring_process(g, i);
        g->done = i + 1;
        if (i + g->C < g->N)
            st = ring_post_send(g, i + g->C);
        if (st == PRIDE_OK)
            st = ring_post_ready(g);
    }
    if (st == PRIDE_OK) {
        /* sends read the caller's buffers: none may be left in flight */
        for (size_t j = 0; j < g->N; j++)
            w[j] = &g->sx[j];
        st = coll_wait(c, w, (int)g->N);
    }
out:
    st = algo_fail(c, st);
    coll_scratch_put(c, g->pool, g->pool_cap);
    free(w);
    free(g->rx);
    free(g->sx);
    return st;
}

int ring_allreduce(struct coll *c, const void *in, void *out, size_t count, pride_dtype_t dt,
                   pride_op_t op)
{
    struct ring g = {.c = c, .dt = dt, .op = op, .count = count, .in = in, .out = out,
                     .rs_steps = c->nranks - 1, .ag_steps = c->nranks - 1};
    g.own = (char *)out + algo_block_off(count, c->nranks, c->rank) * pride_dtype_size(dt);
    return ring_run(&g);
}

int ring_reduce_scatter(struct coll *c, const void *in, void *own, size_t count,
                        pride_dtype_t dt, pride_op_t op)
{
    struct ring g = {.c = c, .dt = dt, .op = op, .count = count, .in = in, .own = own,
                     .rs_steps = c->nranks - 1};
    return ring_run(&g);
}

int ring_allgather(struct coll *c, void *out, size_t count, pride_dtype_t dt)
{
    struct ring g = {.c = c, .dt = dt, .count = count, .out = out, .ag_steps = c->nranks - 1};
    g.own = (char *)out + algo_block_off(count, c->nranks, c->rank) * pride_dtype_size(dt);
    return ring_run(&g);
}
