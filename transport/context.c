/*
 * pride_init and friends: read the configuration (the struct first, then PRIDE_*
 * variables, then the launchers' own: Slurm, Open MPI, PMI), open the rendezvous
 * store, start the transport, and keep the context's failure state. A context that
 * has failed stays failed: every later call returns the same status at once, so a
 * rank never waits on peers that have given up.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"

int64_t pride_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t pride_deadline_ns(int timeout_ms)
{
    return pride_now_ns() + (int64_t)timeout_ms * 1000000;
}

const struct pride_tp_ops *pride_tp_find(const char *name)
{
    static const struct pride_tp_ops *const all[] = {
        &pride_tcp_ops,
        &pride_faulty_ops,
#ifdef PRIDE_HAVE_OFI
        &pride_ofi_ops,
#endif
#ifdef PRIDE_HAVE_VERBS
        &pride_verbs_ops,
#endif
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(all[i]->name, name))
            return all[i];
    return NULL;
}

int pride_error(pride_context_t *ctx, int status, const char *fmt, ...)
{
    if (!ctx)
        return status;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&ctx->mu);
    vsnprintf(ctx->last_error, sizeof ctx->last_error, fmt, ap);
    pthread_mutex_unlock(&ctx->mu);
    va_end(ap);
    return status;
}

int pride_fail(pride_context_t *ctx, int status)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&ctx->failed, &expected, status))
        status = expected;
    if (ctx->tp && ctx->tp_ops->wake)
        ctx->tp_ops->wake(ctx->tp);
    return status;
}

/* An integer from the environment; 1 if found and valid, 0 if absent, -1 if garbage. */
static int env_int(const char *name, int *out)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < -1 || v > 1 << 24)
        return -1;
    *out = (int)v;
    return 1;
}

static const char *env_str(const char *name)
{
    const char *s = getenv(name);
    return s && *s ? s : NULL;
}

/* Rank and size from PRIDE_*, then the launchers' variables, in pairs. */
static int config_ranks(const pride_config_t *cfg, int *rank, int *nranks, char *why, size_t wl)
{
    static const char *const pairs[][2] = {{"PRIDE_RANK", "PRIDE_NRANKS"},
                                           {"SLURM_PROCID", "SLURM_NTASKS"},
                                           {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                                           {"PMI_RANK", "PMI_SIZE"}};
    int r = cfg->rank, n = cfg->nranks;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0] && (r < 0 || n < 0); i++) {
        int er = r, en = n;
        int fr = r < 0 ? env_int(pairs[i][0], &er) : 0;
        int fn = n < 0 ? env_int(pairs[i][1], &en) : 0;
        if (fr < 0 || fn < 0) {
            snprintf(why, wl, "%s or %s is not a number", pairs[i][0], pairs[i][1]);
            return PRIDE_ERR_INVALID;
        }
        if (fr > 0)
            r = er;
        if (fn > 0)
            n = en;
    }
    if (r < 0 && n < 0) { /* nothing anywhere: a job of one, like an MPI singleton */
        r = 0;
        n = 1;
    }
    if (n < 1 || r < 0 || r >= n) {
        snprintf(why, wl, "rank %d of %d ranks is not valid (set PRIDE_RANK and PRIDE_NRANKS)", r,
                 n);
        return PRIDE_ERR_INVALID;
    }
    *rank = r;
    *nranks = n;
    return PRIDE_OK;
}

static int config_algo(int *algo, char *why, size_t wl)
{
    const char *s = env_str("PRIDE_ALLREDUCE_ALGO");
    static const char *const names[] = {"auto", "ring", "tree", "rhd"};
    *algo = PRIDE_ALGO_AUTO;
    if (!s)
        return PRIDE_OK;
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *algo = i;
            return PRIDE_OK;
        }
    snprintf(why, wl, "PRIDE_ALLREDUCE_ALGO=%s: expected auto, ring, tree or rhd", s);
    return PRIDE_ERR_INVALID;
}

static int config_checksum(int *on, char *why, size_t wl)
{
    const char *s = env_str("PRIDE_CHECKSUM");
    *on = s && !strcmp(s, "crc32c");
    if (!s || *on || !strcmp(s, "none"))
        return PRIDE_OK;
    snprintf(why, wl, "PRIDE_CHECKSUM=%s: expected crc32c or none", s);
    return PRIDE_ERR_INVALID;
}

int pride_bootstrap_allgather(pride_context_t *ctx, const char *key, const void *mine, void *all,
                              size_t len)
{
    if (ctx->oob_allgather) {
        int st = ctx->oob_allgather(ctx->oob_user, mine, all, len);
        if (st != PRIDE_OK)
            return pride_error(ctx, st < 0 ? st : PRIDE_ERR_TRANSPORT,
                               "oob_allgather failed during start-up (%d)", st);
        return PRIDE_OK;
    }
    char k[256];
    snprintf(k, sizeof k, "%s/%d", key, ctx->rank);
    int st = pride_store_set(ctx->store, k, mine, len);
    if (st != PRIDE_OK)
        return pride_error(ctx, st, "store set of %s failed: %s", k, ctx->store->why);
    int64_t deadline = pride_deadline_ns(ctx->timeout_ms);
    for (int r = 0; r < ctx->nranks; r++) {
        if (r == ctx->rank) {
            memcpy((char *)all + (size_t)r * len, mine, len);
            continue;
        }
        snprintf(k, sizeof k, "%s/%d", key, r);
        void *val = NULL;
        size_t vlen = 0;
        st = pride_store_get(ctx->store, k, &val, &vlen, deadline);
        if (st != PRIDE_OK)
            return pride_error(ctx, st,
                               "rank %d never published %s within %d ms (is it running, with "
                               "the same store and job?): %s",
                               r, k, ctx->timeout_ms, ctx->store->why);
        if (vlen != len) {
            free(val);
            return pride_error(ctx, PRIDE_ERR_INVALID,
                               "rank %d published %zu bytes under %s, expected %zu (another "
                               "pride version or job?)",
                               r, vlen, k, len);
        }
        memcpy((char *)all + (size_t)r * len, val, len);
        free(val);
    }
    return PRIDE_OK;
}

int pride_init(const pride_config_t *cfg_in, pride_context_t **out)
{
    if (!out)
        return PRIDE_ERR_INVALID;
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    if (cfg_in) {
        if (cfg_in->size < offsetof(pride_config_t, timeout_ms) + sizeof(int) ||
            cfg_in->size > 4096) {
            fprintf(stderr, "pride: pride_init: config size %zu is not a pride_config_t "
                            "(start from PRIDE_CONFIG_INIT)\n", cfg_in->size);
            return PRIDE_ERR_INVALID;
        }
        memcpy(&cfg, cfg_in, cfg_in->size < sizeof cfg ? cfg_in->size : sizeof cfg);
        cfg.size = sizeof cfg;
    }
    char why[512] = "";
    int st;
    pride_context_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return PRIDE_ERR_NOMEM;
    pthread_mutex_init(&ctx->mu, NULL);
    pride_bufcache_init(&ctx->scratch, (size_t)256 << 20);

    st = config_ranks(&cfg, &ctx->rank, &ctx->nranks, why, sizeof why);
    if (st)
        goto fail;
    ctx->timeout_ms = cfg.timeout_ms;
    if (ctx->timeout_ms <= 0) {
        int t = 0;
        int f = env_int("PRIDE_TIMEOUT_MS", &t);
        if (f < 0 || (f > 0 && t <= 0)) {
            snprintf(why, sizeof why, "PRIDE_TIMEOUT_MS must be a positive number of ms");
            st = PRIDE_ERR_INVALID;
            goto fail;
        }
        ctx->timeout_ms = f > 0 ? t : 30000;
    }
    const char *job = cfg.job ? cfg.job : env_str("PRIDE_JOB");
    snprintf(ctx->job, sizeof ctx->job, "%s", job ? job : "pride");
    const char *ifname = cfg.ifname ? cfg.ifname : env_str("PRIDE_IFNAME");
    snprintf(ctx->ifname, sizeof ctx->ifname, "%s", ifname ? ifname : "");
    st = config_algo(&ctx->allreduce_algo, why, sizeof why);
    if (st)
        goto fail;
    st = config_checksum(&ctx->checksum, why, sizeof why);
    if (st)
        goto fail;
    const char *tpname = cfg.transport ? cfg.transport : env_str("PRIDE_TRANSPORT");
    if (!tpname)
        tpname = "tcp";
    ctx->tp_ops = pride_tp_find(tpname);
    if (!ctx->tp_ops) {
        snprintf(why, sizeof why, "transport \"%s\" is unknown or not built in (tcp%s%s)", tpname,
#ifdef PRIDE_HAVE_OFI
                 ", ofi",
#else
                 "",
#endif
#ifdef PRIDE_HAVE_VERBS
                 ", verbs"
#else
                 ""
#endif
        );
        st = PRIDE_ERR_TRANSPORT;
        goto fail;
    }
    ctx->oob_allgather = cfg.oob_allgather;
    ctx->oob_user = cfg.oob_user;
    if (ctx->nranks > 1 && !ctx->oob_allgather) {
        const char *store = cfg.store ? cfg.store : env_str("PRIDE_STORE");
        if (!store) {
            snprintf(why, sizeof why,
                     "%d ranks but no store: set PRIDE_STORE (file:DIR, tcp:HOST:PORT or "
                     "redis:HOST:PORT) or start the job with pride-run",
                     ctx->nranks);
            st = PRIDE_ERR_INVALID;
            goto fail;
        }
        st = pride_store_open(store, ctx->job, ctx->rank, ctx->nranks, ctx->timeout_ms,
                              &ctx->store, why, sizeof why);
        if (st)
            goto fail;
    }
    st = ctx->tp_ops->open(ctx, &ctx->tp);
    if (st) {
        snprintf(why, sizeof why, "%.500s", ctx->last_error);
        goto fail;
    }
    /* Once the mesh is up every rank has read what it needed: let the store go (a tcp
       store's server on rank 0 would otherwise live as long as the job). */
    if (ctx->store) {
        pride_store_close(ctx->store);
        ctx->store = NULL;
    }
    *out = ctx;
    return PRIDE_OK;
fail:
    fprintf(stderr, "pride: rank %d: pride_init: %s: %s\n", ctx->rank, pride_strerror(st), why);
    if (ctx->store)
        pride_store_close(ctx->store);
    pride_bufcache_destroy(&ctx->scratch);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx);
    return st;
}

int pride_finalize(pride_context_t *ctx)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    if (ctx->worker_stop)
        ctx->worker_stop(ctx);
    if (ctx->tp)
        ctx->tp_ops->close(ctx->tp);
    if (ctx->store)
        pride_store_close(ctx->store);
    pride_bufcache_destroy(&ctx->scratch);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx);
    return PRIDE_OK;
}

int pride_rank(const pride_context_t *ctx)
{
    return ctx ? ctx->rank : PRIDE_ERR_INVALID;
}

int pride_nranks(const pride_context_t *ctx)
{
    return ctx ? ctx->nranks : PRIDE_ERR_INVALID;
}

int pride_abort(pride_context_t *ctx)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    atomic_store(&ctx->aborted, 1);
    pride_error(ctx, PRIDE_ERR_ABORTED, "pride_abort() was called on rank %d", ctx->rank);
    if (ctx->tp)
        ctx->tp_ops->wake(ctx->tp);
    return PRIDE_OK;
}

const char *pride_last_error(const pride_context_t *ctx)
{
    return ctx ? ctx->last_error : "no context";
}

int pride_get_stats(const pride_context_t *ctx, pride_stats_t *stats)
{
    if (!ctx || !stats || stats->size < sizeof(size_t))
        return PRIDE_ERR_INVALID;
    pride_context_t *c = (pride_context_t *)ctx;
    pride_stats_t s = {sizeof s,
                       atomic_load(&c->bytes_sent),
                       atomic_load(&c->bytes_received),
                       atomic_load(&c->messages_sent),
                       atomic_load(&c->messages_received),
                       atomic_load(&c->header_bytes_sent),
                       atomic_load(&c->unexpected_messages),
                       atomic_load(&c->unexpected_bytes)};
    size_t n = stats->size < sizeof s ? stats->size : sizeof s;
    memcpy((char *)stats + sizeof(size_t), (char *)&s + sizeof(size_t), n - sizeof(size_t));
    return PRIDE_OK;
}

int pride_reset_stats(pride_context_t *ctx)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    atomic_store(&ctx->bytes_sent, 0);
    atomic_store(&ctx->bytes_received, 0);
    atomic_store(&ctx->messages_sent, 0);
    atomic_store(&ctx->messages_received, 0);
    atomic_store(&ctx->header_bytes_sent, 0);
    atomic_store(&ctx->unexpected_messages, 0);
    atomic_store(&ctx->unexpected_bytes, 0);
    return PRIDE_OK;
}
