/*
 * Rendezvous stores: a small key-value space all ranks of a job reach, used only
 * at start-up to swap addresses (and the job key). Keys are namespaced by job.
 *
 *   file:DIR        a shared directory; each key is a file written by atomic rename
 *   tcp:HOST:PORT   rank 0 serves a tiny key-value server, every rank is a client
 *   redis:HOST:PORT a real Redis server (hiredis), when built with it
 *
 * get waits (blocking, no spinning beyond a backoff) until the key exists or the
 * deadline passes; add is an atomic counter (barriers during start-up).
 */
#ifndef PRIDE_STORE_H
#define PRIDE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct pride_store;

struct pride_store_ops {
    size_t size;
    const char *scheme; /* "file", "tcp", "redis" */
    /* spec is what follows "scheme:"; rank 0 of a tcp store serves. */
    int (*open)(const char *spec, const char *job, int rank, int nranks, int timeout_ms,
                struct pride_store **out, char *why, size_t whylen);
    int (*set)(struct pride_store *s, const char *key, const void *val, size_t len);
    /* Wait until key exists (deadline: CLOCK_MONOTONIC ns), then copy its value into a
       malloc'd buffer (*val, *len); PRIDE_ERR_TIMEOUT when the deadline passes. */
    int (*get)(struct pride_store *s, const char *key, void **val, size_t *len,
               int64_t deadline_ns);
    /* Atomically add delta to the integer stored at key (absent = 0); *result = new value. */
    int (*add)(struct pride_store *s, const char *key, int64_t delta, int64_t *result);
    void (*close)(struct pride_store *s);
};

/* A store: the ops and the backend's state behind them. */
struct pride_store {
    const struct pride_store_ops *ops;
    char why[256]; /* last failure, a sentence */
};

/* Open the store named by spec ("file:DIR", "tcp:HOST:PORT", "redis:HOST:PORT").
   On failure return PRIDE_ERR_INVALID (bad spec), PRIDE_ERR_UNSUPPORTED (scheme not
   built), PRIDE_ERR_IO / TIMEOUT, with a sentence in why. */
int pride_store_open(const char *spec, const char *job, int rank, int nranks, int timeout_ms,
                     struct pride_store **out, char *why, size_t whylen);
int pride_store_set(struct pride_store *s, const char *key, const void *val, size_t len);
int pride_store_get(struct pride_store *s, const char *key, void **val, size_t *len,
                    int64_t deadline_ns);
int pride_store_add(struct pride_store *s, const char *key, int64_t delta, int64_t *result);
/* Every rank adds 1 to key and waits until it reaches nranks. */
int pride_store_barrier(struct pride_store *s, const char *key, int nranks, int64_t deadline_ns);
void pride_store_close(struct pride_store *s);

extern const struct pride_store_ops pride_store_file_ops;
extern const struct pride_store_ops pride_store_tcp_ops;
extern const struct pride_store_ops pride_store_redis_ops; /* only with PRIDE_HAVE_REDIS */

#endif
