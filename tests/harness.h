/*
 * Multi-rank test harness: forks real rank processes that talk over real sockets.
 *
 * harness_run() gives each child a fresh file store (a temporary directory), calls
 * pride_init() with rank/nranks set, runs fn, finalizes and exits with fn's result.
 * harness_fork() only forks (fn gets the store spec) for tests that set up contexts
 * themselves. The parent returns 0 when every child exited 0; a child that does not
 * finish within the guard is killed and counted as a failure (a hang guard, not a
 * timing check: it is generous).
 *
 * Inside children use HCHECK, not cmocka's asserts (those belong to the parent).
 */
#ifndef PRIDE_TEST_HARNESS_H
#define PRIDE_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <pride/pride.h>

#define HCHECK(cond)                                                                      \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
            fflush(stderr);                                                               \
            _exit(1);                                                                     \
        }                                                                                 \
    } while (0)

/* Check a pride status; print it and pride_last_error on failure. */
#define HCHECK_OK(ctx, expr)                                                              \
    do {                                                                                  \
        int hst_ = (expr);                                                                \
        if (hst_ != PRIDE_OK) {                                                           \
            fprintf(stderr, "%s:%d: %s -> %s (%s)\n", __FILE__, __LINE__, #expr,          \
                    pride_strerror(hst_), (ctx) ? pride_last_error(ctx) : "");            \
            fflush(stderr);                                                               \
            _exit(1);                                                                     \
        }                                                                                 \
    } while (0)

/* A status check that says what came instead (and why) when it fails. */
#define HCHECK_STATUS(ctx, got, cond)                                                     \
    do {                                                                                  \
        int hst_ = (got);                                                                 \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s (status %s: %s)\n", __FILE__,        \
                    __LINE__, #cond, pride_strerror(hst_),                                \
                    (ctx) ? pride_last_error(ctx) : "");                                  \
            fflush(stderr);                                                               \
            _exit(1);                                                                     \
        }                                                                                 \
    } while (0)

typedef int (*harness_fn)(pride_context_t *ctx, int rank, int nranks, void *arg);
typedef int (*harness_raw_fn)(int rank, int nranks, const char *store, void *arg);

struct harness_opts {
    int timeout_ms;        /* pride config timeout_ms; 0: 20000 */
    int guard_s;           /* kill children after this many seconds; 0: 240 */
    const char *transport; /* NULL: tcp */
};

int harness_run(int nranks, harness_fn fn, void *arg, const struct harness_opts *opts);
int harness_fork(int nranks, harness_raw_fn fn, void *arg, const struct harness_opts *opts);

/* Remove a directory and everything below it (test scratch space). */
void harness_rm_tree(const char *dir);

/* Deterministic pseudo-random numbers (splitmix64). */
static inline uint64_t harness_rand(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

#endif
