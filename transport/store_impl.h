/*
 * What the store backends share, and nothing else sees: the limits every backend
 * enforces, the backoff sleep that every "wait until the key exists" loop uses (so
 * nothing spins), HOST:PORT parsing, and the one format of a counter (decimal ASCII,
 * the format Redis's INCRBY uses, so a barrier reads a counter the same way on every
 * backend). Implemented in store.c.
 */
#ifndef PRIDE_STORE_IMPL_H
#define PRIDE_STORE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "transport.h" /* pride_now_ns, pride_deadline_ns: all deadlines are CLOCK_MONOTONIC */

#define STORE_MAX_KEY 200          /* printable characters in a key */
#define STORE_MAX_JOB 127          /* printable characters in a job name */
#define STORE_MAX_VALUE (1u << 20) /* bytes in a value */
#define STORE_INT_CHARS 24         /* room for a formatted int64 and its NUL */

/* One step of a wait: PRIDE_ERR_TIMEOUT if the deadline has passed, otherwise sleep
   *delay_ns (1 ms the first time, doubling up to 50 ms, never past the deadline)
   and return PRIDE_OK so the caller tries again. Start with *delay_ns = 0. */
int store_backoff(int64_t *delay_ns, int64_t deadline_ns);

/* Split "HOST:PORT" or "[V6ADDR]:PORT" (brackets removed from host); PORT is a
   decimal in 1..65535. PRIDE_ERR_INVALID with a sentence in why otherwise. */
int store_hostport(const char *spec, char *host, size_t hostlen, int *port, char *why,
                   size_t whylen);

/* Counters: a decimal int64, nothing else. Parse returns PRIDE_ERR_INVALID for
   anything that is not exactly that; format returns the length written. */
int store_int_parse(const void *buf, size_t len, int64_t *out);
size_t store_int_format(int64_t v, char buf[STORE_INT_CHARS]);

/* Record a failure sentence in s->why (printf-style); returns status. */
int store_fail(struct pride_store *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
