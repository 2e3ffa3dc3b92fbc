/*
 * The transport layer's one interface. Collectives post non-blocking sends and
 * receives of (peer, seq, tag, buffer) and wait for them with a deadline; a backend
 * (tcp, ofi, verbs) fills struct pride_tp_ops with designated initializers.
 *
 * Every message is a frame: a fixed header (frame.h) and a payload. The header
 * carries the collective's arguments ("meta"), so a receiver can tell a rank that
 * called a different collective, count, dtype, op or root, and fail with
 * PRIDE_ERR_MISMATCH instead of trusting the payload. A rank that fails a
 * collective tells every peer (an ERROR control frame), which poisons their
 * contexts too: no rank waits for a peer that has given up.
 *
 * Progress is driven by the calling threads: whoever waits polls the sockets, one
 * thread at a time; the others sleep on a condition variable. Nothing spins.
 */
#ifndef PRIDE_TRANSPORT_H
#define PRIDE_TRANSPORT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "pride/context.h"
#include "frame.h"

struct pride_tp;

/* One posted send or receive. Owned by the caller; must stay alive (and its buffer
   untouched) until it completes. Fill the public fields, then post. */
struct pride_xfer {
    int peer;                   /* rank on the other side */
    uint64_t seq;               /* collective sequence number */
    uint32_t tag;               /* message index within the collective */
    struct pride_meta meta;     /* the collective's arguments, checked by the receiver */
    void *buf;                  /* payload (const for sends) */
    size_t len;                 /* send: bytes to send; receive: bytes expected exactly */
    int is_send;                /* set by the poster: 1 for a send */
    /* set by the transport */
    int status;                 /* PRIDE_OK, or the failure */
    int complete;               /* 1 once finished (successfully or not) */
    /* transport-private */
    struct pride_xfer *next;
    size_t off;                 /* bytes moved so far (header included for sends) */
    struct pride_frame_hdr hdr; /* wire header for sends */
};

/* What every backend does. */
struct pride_tp_ops {
    size_t size;
    const char *name;
    /* Bind, publish this rank's address in the store, connect to every rank and
       authenticate. On failure leave a sentence in ctx's last error. */
    int (*open)(pride_context_t *ctx, struct pride_tp **tp);
    void (*close)(struct pride_tp *tp);
    /* Memory registration (a no-op for tcp): may return *mr == NULL. */
    int (*mem_reg)(struct pride_tp *tp, void *buf, size_t len, void **mr);
    void (*mem_dereg)(struct pride_tp *tp, void *mr);
    /* Post; completion is seen through wait. A post may complete at once. */
    int (*isend)(struct pride_tp *tp, struct pride_xfer *x);
    int (*irecv)(struct pride_tp *tp, struct pride_xfer *x);
    /* Until every xfer in xs is complete, the deadline (CLOCK_MONOTONIC ns; 0 = do not
       block, just make progress) passes, or the context fails. Returns PRIDE_OK when
       all completed successfully, else the first failure (TIMEOUT, PEER, MISMATCH,
       ABORTED). Safe to call from several threads at once. */
    int (*wait)(struct pride_tp *tp, struct pride_xfer *const *xs, int n, int64_t deadline_ns);
    /* Wake every waiter (after pride_abort or a failure); safe from any thread. */
    void (*wake)(struct pride_tp *tp);
    /* Best effort, never blocks long: tell every peer this rank failed collective seq
       with status and reason, so that they fail too instead of waiting. */
    void (*broadcast_error)(struct pride_tp *tp, uint64_t seq, int status, const char *reason);
};

extern const struct pride_tp_ops pride_tcp_ops;
extern const struct pride_tp_ops pride_faulty_ops; /* tcp with injected faults (tests) */
extern const struct pride_tp_ops pride_ofi_ops;    /* built with PRIDE_HAVE_OFI */
extern const struct pride_tp_ops pride_verbs_ops;  /* built with PRIDE_HAVE_VERBS */

/* Find a backend by name ("tcp", "ofi", "verbs"); NULL when unknown or not built. */
const struct pride_tp_ops *pride_tp_find(const char *name);

/* Monotonic clock in ns, and a deadline timeout_ms from now. */
int64_t pride_now_ns(void);
int64_t pride_deadline_ns(int timeout_ms);

#endif
