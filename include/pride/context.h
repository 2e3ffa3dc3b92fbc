/**
 * @file pride/context.h
 * @brief Creating a group of ranks (a context) and asking about it.
 */
#ifndef PRIDE_CONTEXT_H
#define PRIDE_CONTEXT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An initialized group of ranks. Opaque. */
typedef struct pride_context pride_context_t;

/**
 * Configuration for pride_init(). Start from PRIDE_CONFIG_INIT; fields left at their
 * initial value are read from the environment (see each field).
 */
typedef struct pride_config {
    size_t size;            /**< = sizeof(pride_config_t); set by PRIDE_CONFIG_INIT */
    int rank;               /**< -1: from the environment */
    int nranks;             /**< -1: from the environment */
    const char *transport;  /**< "tcp" | "ofi" | "verbs"; NULL: $PRIDE_TRANSPORT or tcp */
    const char *store;      /**< "file:DIR" | "tcp:HOST:PORT" | "redis:HOST:PORT"; NULL: $PRIDE_STORE */
    const char *job;        /**< namespace for store keys; NULL: $PRIDE_JOB or "pride" */
    const char *ifname;     /**< interface or address to bind; NULL: $PRIDE_IFNAME */
    int timeout_ms;         /**< per blocking call; 0: $PRIDE_TIMEOUT_MS or 30000 */
    /** out-of-band bootstrap (e.g. over MPI): if set, used instead of a store.
        Must gather @p len bytes from every rank into @p all in rank order. */
    int (*oob_allgather)(void *user, const void *mine, void *all, size_t len);
    void *oob_user;         /**< passed to oob_allgather */
} pride_config_t;

/** Initializer for pride_config_t: everything from the environment. */
#define PRIDE_CONFIG_INIT \
    { sizeof(pride_config_t), -1, -1, NULL, NULL, NULL, NULL, 0, NULL, NULL }

/**
 * @brief Join the group: read configuration, start the transport, connect to every rank.
 * @param cfg configuration, or NULL to take everything from the environment
 * @param[out] ctx the new context, written only on success
 * @return PRIDE_OK, or PRIDE_ERR_INVALID (bad configuration), PRIDE_ERR_TRANSPORT,
 *         PRIDE_ERR_TIMEOUT (peers did not show up in time), PRIDE_ERR_AUTH, ...
 */
int pride_init(const pride_config_t *cfg, pride_context_t **ctx);

/**
 * @brief Close connections and free the context. Does not synchronize with other ranks.
 * @return PRIDE_OK, or PRIDE_ERR_INVALID for a NULL context
 */
int pride_finalize(pride_context_t *ctx);

/** @brief This rank's index, 0..nranks-1, or PRIDE_ERR_INVALID for a NULL context. */
int pride_rank(const pride_context_t *ctx);

/** @brief Number of ranks in the context, or PRIDE_ERR_INVALID for a NULL context. */
int pride_nranks(const pride_context_t *ctx);

/**
 * @brief Wake every call blocked on @p ctx (from any thread) with PRIDE_ERR_ABORTED;
 *        every later call on it also fails with PRIDE_ERR_ABORTED. Safe from another thread.
 */
int pride_abort(pride_context_t *ctx);

/**
 * @brief A human sentence describing the last failure on @p ctx (which peer, which
 *        call, what was expected and what came); "" when nothing failed.
 */
const char *pride_last_error(const pride_context_t *ctx);

/** Traffic counters of a context (this rank's side only). */
typedef struct pride_stats {
    size_t size;                 /**< = sizeof(pride_stats_t); set by PRIDE_STATS_INIT */
    unsigned long long bytes_sent;        /**< payload bytes this rank put on the wire */
    unsigned long long bytes_received;    /**< payload bytes this rank took off the wire */
    unsigned long long messages_sent;     /**< frames sent (each also carries a header) */
    unsigned long long messages_received; /**< frames received */
    unsigned long long header_bytes_sent; /**< framing overhead, not counted in bytes_sent */
    unsigned long long unexpected_messages; /**< frames that came before their receive was
                                                 posted and were buffered (then copied);
                                                 tcp and verbs count them, ofi leaves that
                                                 to the provider and reports 0 */
    unsigned long long unexpected_bytes;    /**< payload bytes of those frames */
} pride_stats_t;

/** Initializer for pride_stats_t. */
#define PRIDE_STATS_INIT { sizeof(pride_stats_t), 0, 0, 0, 0, 0, 0, 0 }

/**
 * @brief Read this rank's traffic counters since pride_init() or pride_reset_stats().
 * @param ctx the context
 * @param[out] stats filled up to stats->size bytes
 */
int pride_get_stats(const pride_context_t *ctx, pride_stats_t *stats);

/** @brief Zero this rank's traffic counters. */
int pride_reset_stats(pride_context_t *ctx);

#ifdef __cplusplus
}
#endif
#endif
