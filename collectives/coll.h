/*
 * What every collective algorithm is written with: a collective call's state
 * (sequence number, the arguments every peer must agree on, the deadline) and
 * point-to-point posts that stamp them on every frame. Algorithms never see a
 * socket; they post, wait and reduce.
 *
 * Shape of a collective:
 *
 *     struct coll c;
 *     int st = coll_begin(&c, ctx, PRIDE_COLL_ALLREDUCE, dtype, op, count, -1);
 *     if (st) return st;
 *     ... coll_isend / coll_irecv / coll_wait ...
 *     return coll_end(&c, st);
 *
 * coll_end reports a failure to every peer (so no rank waits for one that gave up)
 * and leaves a sentence in pride_last_error.
 */
#ifndef PRIDE_COLL_H
#define PRIDE_COLL_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "frame.h"
#include "transport.h"

struct coll {
    pride_context_t *ctx;
    struct pride_tp *tp;
    const struct pride_tp_ops *ops;
    uint64_t seq;
    struct pride_meta meta;
    int rank, nranks;
    int64_t deadline_ns;
};

/* Validate the context (not failed, not aborted), take the next sequence number and
   stamp the arguments. op is a pride_op_t, or a tie rule for votes, or 0. */
int coll_begin(struct coll *c, pride_context_t *ctx, enum pride_coll_kind kind, int dtype,
               int op, size_t count, int root);
/* Same, with a sequence number taken earlier (non-blocking collectives take theirs
   when started, run later on the worker). */
int coll_begin_seq(struct coll *c, pride_context_t *ctx, uint64_t seq, enum pride_coll_kind kind,
                   int dtype, int op, size_t count, int root);
/* Take a sequence number now (for coll_begin_seq later). */
uint64_t coll_take_seq(pride_context_t *ctx);
/* Make the next coll_begin on this thread use seq instead of taking one (the worker
   of non-blocking collectives runs a blocking collective in the slot its request was
   given when it started); coll_force_seq_clear forgets an unused one. */
void coll_force_seq(uint64_t seq);
void coll_force_seq_clear(void);
/* Scratch memory for a collective (uninitialized; NULL for 0 bytes or no memory),
   from the context's cache of large buffers: a fresh large malloc is fresh pages,
   faulted in on every call. *cap gets the size to give back to coll_scratch_put. */
void *coll_scratch(struct coll *c, size_t bytes, size_t *cap);
void coll_scratch_put(struct coll *c, void *p, size_t cap);
/* Finish: on failure, tell every peer and poison the context. Returns st. */
int coll_end(struct coll *c, int st);

/* Post a send / receive of exactly len bytes with message index tag. x is filled here. */
int coll_isend(struct coll *c, struct pride_xfer *x, int peer, uint32_t tag, const void *buf,
               size_t len);
int coll_irecv(struct coll *c, struct pride_xfer *x, int peer, uint32_t tag, void *buf,
               size_t len);
/* Wait for all n xfers (entries may be NULL and are skipped), up to the call's deadline. */
int coll_wait(struct coll *c, struct pride_xfer **xs, int n);

#endif
