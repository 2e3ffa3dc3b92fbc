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
 * Each block is cut into C chunks; a (step, chunk) pair is an "item", numbered
 * i = step*C + chunk, which is also its tag. Items go through in order, and a window
 * of W items is in flight in each direction: while item i is reduced, items up to
 * i+W-1 are arriving, and its neighbours' copies of the next step are on the wire.
 * Chunk i+W's send is posted as item i finishes, the same moment the right neighbour
 * (running in step) posts its receive, so data lands straight in the buffer meant for
 * it. Reduce-scatter receives go to W small slots (hot in cache) and are reduced from
 * there straight into the output (reduce_apply3); allgather receives go straight to
 * the output. Nothing else is copied.
 */
#include <stdlib.h>

#include "algos.h"
#include "reduce_kernels.h"

struct ring {
    struct coll *c;
    pride_dtype_t dt;
    pride_op_t op;
    size_t es;
    int P, r;
    size_t count;    /* whole vector, elements */
    const char *in;  /* reduce-scatter input: the whole vector */
    char *out;       /* the whole vector (allreduce, allgather), or NULL */
    char *own;       /* where this rank's block ends */
    char *acc;       /* reduce_scatter only: nacc chunk slots for partial sums */
    size_t nacc;
    char *slots;     /* W chunk slots for reduce-scatter receives */
    int rs_steps;    /* P-1 with a reduce-scatter phase, else 0 */
    int ag_steps;    /* P-1 with an allgather phase, else 0 */
    size_t ce, C, W; /* elements per chunk, chunks per block, window */
    size_t nitems;
    struct pride_xfer *sx;              /* one per item */
    struct pride_xfer rx[ALGO_WINDOW];
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

/* Where item i's data sits once processed: the source of item i+C's send. */
static char *ring_result(const struct ring *g, size_t i)
{
    size_t k = i % g->C;
    int b = ring_recv_block(g, i);
    if (ring_is_rs(g, i) && ring_step(g, i) == g->P - 2)
        return g->own + ring_chunk_off(g, b, k) * g->es;
    if (ring_is_rs(g, i) && g->acc)
        return g->acc + (i % g->nacc) * g->ce * g->es;
    return g->out + (algo_block_off(g->count, g->P, b) + ring_chunk_off(g, b, k)) * g->es;
}

static int ring_post_send(struct ring *g, size_t i)
{
    size_t k = i % g->C;
    int b = ring_send_block(g, i);
    const char *src;
    if (i >= g->C)
        src = ring_result(g, i - g->C);
    else if (g->rs_steps)
        src = g->in + (algo_block_off(g->count, g->P, b) + ring_chunk_off(g, b, k)) * g->es;
    else
        src = g->own + ring_chunk_off(g, b, k) * g->es;
    return coll_isend(g->c, &g->sx[i], (g->r + 1) % g->P, (uint32_t)i, src,
                      ring_chunk_len(g, b, k) * g->es);
}

static int ring_post_recv(struct ring *g, size_t i)
{
    size_t k = i % g->C;
    int b = ring_recv_block(g, i);
    char *dst;
    if (ring_is_rs(g, i)) {
        dst = g->slots + (i % g->W) * g->ce * g->es;
    } else {
        dst = g->out + (algo_block_off(g->count, g->P, b) + ring_chunk_off(g, b, k)) * g->es;
        if (g->rs_steps) {
            /* This block's chunk left in reduce-scatter item (step, k), maybe from this
               very memory: that send must be done before new data lands here. */
            struct pride_xfer *x = &g->sx[(size_t)ring_step(g, i) * g->C + k];
            int st = coll_wait(g->c, &x, 1);
            if (st != PRIDE_OK)
                return st;
        }
    }
    return coll_irecv(g->c, &g->rx[i % g->W], (g->r + g->P - 1) % g->P, (uint32_t)i, dst,
                      ring_chunk_len(g, b, k) * g->es);
}

/* Item i arrived: fold it into the partial sum (reduce-scatter), or nothing. */
static int ring_process(struct ring *g, size_t i)
{
    if (!ring_is_rs(g, i))
        return PRIDE_OK;
    size_t k = i % g->C;
    int b = ring_recv_block(g, i);
    size_t n = ring_chunk_len(g, b, k);
    int last = ring_step(g, i) == g->P - 2;
    if (g->acc && !last && i >= g->nacc) {
        /* The acc slot's previous partial left in item i - nacc + C. */
        struct pride_xfer *x = &g->sx[i - g->nacc + g->C];
        int st = coll_wait(g->c, &x, 1);
        if (st != PRIDE_OK)
            return st;
    }
    char *dst = ring_result(g, i);
    const char *mine = g->in + (algo_block_off(g->count, g->P, b) + ring_chunk_off(g, b, k)) * g->es;
    reduce_apply3(dst, g->slots + (i % g->W) * g->ce * g->es, mine, n, g->dt, g->op);
    if (last && g->op == PRIDE_AVG)
        pride_avg_finish(dst, n, g->dt, g->P);
    return PRIDE_OK;
}

static int ring_run(struct ring *g)
{
    struct coll *c = g->c;
    g->P = c->nranks;
    g->r = c->rank;
    g->es = pride_dtype_size(g->dt);
    size_t maxlen = algo_block_len(g->count, g->P, 0);
    g->ce = algo_chunk_elems(maxlen * g->es, g->es);
    g->C = algo_nchunks(maxlen, g->ce);
    g->W = g->C < ALGO_WINDOW ? g->C : ALGO_WINDOW;
    g->nitems = (size_t)(g->rs_steps + g->ag_steps) * g->C;
    int st = PRIDE_OK;
    size_t posted = 0;
    g->sx = calloc(g->nitems, sizeof *g->sx);
    if (g->rs_steps)
        g->slots = malloc(g->W * g->ce * g->es);
    if (g->rs_steps && !g->out) {
        g->nacc = g->C + g->W;
        g->acc = malloc(g->nacc * g->ce * g->es);
    }
    if (!g->sx || (g->rs_steps && !g->slots) || (g->nacc && !g->acc)) {
        st = pride_error(c->ctx, PRIDE_ERR_NOMEM, "ring %s of %zu elements: out of memory",
                         pride_coll_name(c->meta.coll), g->count);
        goto out;
    }
    /* The window's receives first (so early data lands in place), then its sends;
       item 0's send is the tag-0 frame every collective opens with. */
    for (size_t j = 0; j < g->W && st == PRIDE_OK; j++)
        st = ring_post_recv(g, j);
    for (; posted < g->W && st == PRIDE_OK; posted++)
        st = ring_post_send(g, posted);
    for (size_t i = 0; i < g->nitems && st == PRIDE_OK; i++) {
        struct pride_xfer *x = &g->rx[i % g->W];
        st = coll_wait(c, &x, 1);
        if (st == PRIDE_OK)
            st = ring_process(g, i);
        if (st == PRIDE_OK && i + g->W < g->nitems) {
            st = ring_post_send(g, i + g->W);
            posted++;
            if (st == PRIDE_OK)
                st = ring_post_recv(g, i + g->W);
        }
    }
out:
    /* Sends read the caller's buffers: none may be left in flight. On failure the
       context is poisoned by coll_end, and the transport completes what is posted. */
    if (st == PRIDE_OK && posted > 0) {
        struct pride_xfer **xs = malloc(posted * sizeof *xs);
        if (!xs) {
            st = pride_error(c->ctx, PRIDE_ERR_NOMEM, "ring: out of memory");
        } else {
            for (size_t j = 0; j < posted; j++)
                xs[j] = &g->sx[j];
            st = coll_wait(c, xs, (int)posted);
            free(xs);
        }
    }
    st = algo_fail(c, st);
    free(g->acc);
    free(g->slots);
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
