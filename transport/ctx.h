/*
 * The context behind pride_context_t: who this rank is, its transport and store,
 * the collective sequence counter, and the sticky failure state. Internal.
 */
#ifndef PRIDE_CTX_H
#define PRIDE_CTX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "bufcache.h"
#include "pride/pride.h"
#include "store.h"
#include "transport.h"

enum pride_algo { PRIDE_ALGO_AUTO = 0, PRIDE_ALGO_RING, PRIDE_ALGO_TREE, PRIDE_ALGO_RHD };

struct pride_worker; /* background thread for non-blocking collectives (collectives/) */

struct pride_context {
    int rank, nranks;
    int timeout_ms;
    char job[128];
    char ifname[128];
    const struct pride_tp_ops *tp_ops;
    struct pride_tp *tp;
    struct pride_store *store; /* NULL after start-up or with oob_allgather */
    int (*oob_allgather)(void *user, const void *mine, void *all, size_t len);
    void *oob_user;
    int allreduce_algo; /* enum pride_algo, from $PRIDE_ALLREDUCE_ALGO */
    int checksum;       /* 1: frames carry CRC32C (PRIDE_CHECKSUM=crc32c) */

    pthread_mutex_t mu;        /* guards next_seq, last_error, worker */
    uint64_t next_seq;
    atomic_int failed;         /* sticky: 0, or the status that poisoned the context */
    atomic_int aborted;
    char last_error[1024];

    atomic_ullong bytes_sent, bytes_received, messages_sent, messages_received,
        header_bytes_sent, unexpected_messages, unexpected_bytes;

    struct pride_bufcache scratch; /* large buffers reused: collectives' scratch, tcp's
                                      unexpected payloads */

    struct pride_worker *worker;
    void (*worker_stop)(pride_context_t *ctx); /* set by whoever starts the worker */
};

/* Record a failure sentence (printf-style) as the context's last error; returns status
   so callers can write `return pride_error(ctx, PRIDE_ERR_PEER, "...", ...)`. */
int pride_error(pride_context_t *ctx, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Poison the context: every pending and later call fails with status (first one wins).
   Wakes blocked waiters. Returns the status the context now holds. */
int pride_fail(pride_context_t *ctx, int status);

/* PRIDE_OK, or the status the context was poisoned / aborted with. */
static inline int pride_ctx_status(const pride_context_t *ctx)
{
    if (atomic_load(&((pride_context_t *)ctx)->aborted))
        return PRIDE_ERR_ABORTED;
    return atomic_load(&((pride_context_t *)ctx)->failed);
}

/* Start-up allgather of a small blob through the store or oob_allgather: all gets
   nranks*len bytes in rank order. key names the exchange (unique per use). */
int pride_bootstrap_allgather(pride_context_t *ctx, const char *key, const void *mine,
                              void *all, size_t len);

#endif
