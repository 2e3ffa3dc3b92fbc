/*
 * The optimizer object: checks a configuration and a tensor layout, owns the state,
 * dispatches a step to its algorithm and keeps the books (bytes, time, syncs).
 *
 * The one idea: replicas stay bit-identical only if every rank runs the same rule on
 * the same numbers, so creation refuses anything that could make ranks differ — an
 * unknown name, an out-of-range value, a bad layout, and (with one small allreduce)
 * ranks whose configuration, layout or initial parameters are not the same.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h" /* pride_error only: failures leave a sentence in pride_last_error */
#include "optim.h"

static const char *const algo_names[] = {
    [OPTIM_LION] = "lion",
    [OPTIM_ADAMW] = "adamw",
    [OPTIM_GLOBAL_LION] = "global-lion",
    [OPTIM_GLOBAL_ADAMW] = "global-adamw",
    [OPTIM_DLION_MAVO] = "dlion-mavo",
    [OPTIM_DLION_AVG] = "dlion-avg",
    [OPTIM_LIONCUB] = "lioncub",
};

static const char *const quant_names[] = {
    [OPTIM_QUANT_SIGN1] = "sign1",
    [OPTIM_QUANT_L1] = "l1",
    [OPTIM_QUANT_L1_TERNARY] = "l1-ternary",
};

const char *optim_algo_name(enum optim_algo a) { return algo_names[a]; }
const char *optim_quant_name(enum optim_quant q) { return quant_names[q]; }

int64_t optim_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int optim_istart(struct pride_optim *o, size_t slot, size_t k, const void *send, void *recv,
                 pride_dtype_t dt, pride_op_t op)
{
    size_t es = pride_dtype_size(dt);
    const struct optim_tensor *t = &o->t[k];
    return pride_iallreduce(o->ctx, (const char *)send + t->offset * es,
                            (char *)recv + t->offset * es, t->count, dt, op, &o->reqs[slot]);
}

int optim_wait(struct pride_optim *o, size_t slot)
{
    int64_t t0 = optim_comm_begin();
    int st = pride_wait(o->reqs[slot]);
    o->reqs[slot] = NULL;
    optim_comm_end(o, t0);
    return st;
}

int optim_drain(struct pride_optim *o, int st)
{
    for (size_t i = 0; i < 2 * o->nt; i++)
        if (o->reqs[i])
            optim_wait(o, i);
    return st;
}

/* FNV-1a over bytes; the hashes only need to tell honest configurations apart. */
static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * UINT64_C(0x100000001b3);
    return h;
}

#define FNV_INIT UINT64_C(0xcbf29ce484222325)

uint64_t optim_layout_hash(const struct pride_optim *o)
{
    uint64_t h = fnv(FNV_INIT, &o->n, sizeof o->n);
    for (size_t k = 0; k < o->nt; k++) {
        h = fnv(h, o->t[k].name, strlen(o->t[k].name) + 1);
        h = fnv(h, &o->t[k].offset, sizeof o->t[k].offset);
        h = fnv(h, &o->t[k].count, sizeof o->t[k].count);
    }
    return h;
}

uint64_t optim_config_hash(const struct pride_optim *o)
{
    uint64_t h = FNV_INIT;
    const char *a = optim_algo_name(o->algo), *q = optim_quant_name(o->quant);
    h = fnv(h, a, strlen(a) + 1);
    h = fnv(h, q, strlen(q) + 1);
    h = fnv(h, o->sync_spec, strlen(o->sync_spec) + 1);
    float f[5] = {o->lr, o->wd, o->beta1, o->beta2, o->eps};
    h = fnv(h, f, sizeof f);
    h = fnv(h, &o->seed, sizeof o->seed);
    int tie = (int)o->tie;
    return fnv(h, &tie, sizeof tie);
}

/* A word-at-a-time hash of the parameters (FNV-1a per byte is too slow for big models). */
static uint64_t params_hash(const float *x, size_t n)
{
    uint64_t h = FNV_INIT ^ n;
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, &x[i], sizeof w);
        h = (h ^ w) * UINT64_C(0x9E3779B97F4A7C15);
        h ^= h >> 29;
    }
    return h;
}

static int lookup(const char *const *names, size_t count, const char *s)
{
    for (size_t i = 0; i < count; i++)
        if (!strcmp(names[i], s))
            return (int)i;
    return -1;
}

static int by_offset(const void *a, const void *b)
{
    const struct optim_tensor *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Fill the configuration part of o from cfg; PRIDE_OK or a sentence in why. */
static int config_parse(struct pride_optim *o, const pride_optim_config_t *cfg, char *why,
                        size_t wl)
{
    if (!cfg->algorithm) {
        snprintf(why, wl, "no algorithm given (lion, adamw, global-lion, global-adamw, "
                          "dlion-mavo, dlion-avg or lioncub)");
        return PRIDE_ERR_INVALID;
    }
    int a = lookup(algo_names, sizeof algo_names / sizeof algo_names[0], cfg->algorithm);
    if (a < 0) {
        snprintf(why, wl, "unknown algorithm '%s' (lion, adamw, global-lion, global-adamw, "
                          "dlion-mavo, dlion-avg or lioncub)", cfg->algorithm);
        return PRIDE_ERR_INVALID;
    }
    o->algo = (enum optim_algo)a;
    int cub = o->algo == OPTIM_LIONCUB;
    int adam = o->algo == OPTIM_ADAMW || o->algo == OPTIM_GLOBAL_ADAMW;

    o->quant = OPTIM_QUANT_SIGN1;
    if (cfg->quant) {
        if (!cub) {
            snprintf(why, wl, "quant '%s' applies to lioncub only, not %s", cfg->quant,
                     cfg->algorithm);
            return PRIDE_ERR_INVALID;
        }
        int q = lookup(quant_names, sizeof quant_names / sizeof quant_names[0], cfg->quant);
        if (q < 0) {
            snprintf(why, wl, "unknown quant '%s' (sign1, l1 or l1-ternary)", cfg->quant);
            return PRIDE_ERR_INVALID;
        }
        o->quant = (enum optim_quant)q;
    }
    const char *sync = cfg->momentum_sync ? cfg->momentum_sync : "never";
    if (!cub && strcmp(sync, "never")) {
        snprintf(why, wl, "momentum_sync '%s' applies to lioncub only, not %s (Distributed Lion "
                          "never syncs momentum)", sync, cfg->algorithm);
        return PRIDE_ERR_INVALID;
    }
    int st = lioncub_parse_sync(o, sync, why, wl);
    if (st != PRIDE_OK)
        return st;

    if (!(cfg->lr > 0) || !isfinite(cfg->lr)) {
        snprintf(why, wl, "lr must be a finite number > 0 (got %g)", (double)cfg->lr);
        return PRIDE_ERR_INVALID;
    }
    if (!(cfg->wd >= 0) || !isfinite(cfg->wd)) {
        snprintf(why, wl, "wd must be a finite number >= 0 (got %g)", (double)cfg->wd);
        return PRIDE_ERR_INVALID;
    }
    o->lr = cfg->lr;
    o->wd = cfg->wd;
    float b[2] = {cfg->beta1, cfg->beta2};
    float def[2] = {0.9f, adam ? 0.999f : 0.99f};
    for (int i = 0; i < 2; i++) {
        if (b[i] < 0) {
            b[i] = def[i];
        } else if (!(b[i] < 1)) {
            snprintf(why, wl, "beta%d must be in [0, 1), or negative for the default %g (got %g)",
                     i + 1, (double)def[i], (double)b[i]);
            return PRIDE_ERR_INVALID;
        }
    }
    o->beta1 = b[0];
    o->beta2 = b[1];
    o->eps = 0;
    if (adam) {
        o->eps = cfg->eps < 0 ? 1e-8f : cfg->eps;
        if (!(o->eps > 0) || !isfinite(o->eps)) {
            snprintf(why, wl, "eps must be a finite number > 0, or negative for the default "
                              "1e-8 (got %g)", (double)cfg->eps);
            return PRIDE_ERR_INVALID;
        }
    }
    if (cfg->tie != PRIDE_TIE_NEGATIVE && cfg->tie != PRIDE_TIE_POSITIVE &&
        cfg->tie != PRIDE_TIE_ALTERNATE) {
        snprintf(why, wl, "tie %d is not a pride_tie_t", (int)cfg->tie);
        return PRIDE_ERR_INVALID;
    }
    o->tie = cfg->tie;
    o->seed = cfg->seed;

    if (cub && o->quant != OPTIM_QUANT_SIGN1 && lioncub_levels(o->quant, o->nranks) < 1) {
        snprintf(why, wl, "quant %s sums int8 levels over ranks, so it needs s = floor(127 / "
                          "nranks) >= 1, that is at most 127 ranks; this job has %d (use sign1)",
                 optim_quant_name(o->quant), o->nranks);
        return PRIDE_ERR_INVALID;
    }
    if (o->algo == OPTIM_DLION_AVG && o->nranks > 255) {
        snprintf(why, wl, "dlion-avg counts votes in 8 bits, so at most 255 ranks; this job has "
                          "%d (use dlion-mavo)", o->nranks);
        return PRIDE_ERR_INVALID;
    }
    return PRIDE_OK;
}

/* Copy and check the tensors: named, non-empty, inside the buffer, not overlapping. */
static int layout_parse(struct pride_optim *o, const pride_tensor_t *tensors, size_t nt,
                        char *why, size_t wl)
{
    if (nt == 0) {
        snprintf(why, wl, "no tensors: the buffer must be split into at least one tensor");
        return PRIDE_ERR_INVALID;
    }
    o->t = calloc(nt, sizeof *o->t);
    if (!o->t)
        return PRIDE_ERR_NOMEM;
    o->nt = nt;
    for (size_t k = 0; k < nt; k++) {
        const pride_tensor_t *t = &tensors[k];
        if (!t->name) {
            snprintf(why, wl, "tensor %zu has no name", k);
            return PRIDE_ERR_INVALID;
        }
        if (t->count == 0 || t->offset > o->n || t->count > o->n - t->offset) {
            snprintf(why, wl, "tensor %zu '%s' covers [%zu, %zu + %zu), which is empty or not "
                              "inside the %zu parameters", k, t->name, t->offset, t->offset,
                     t->count, o->n);
            return PRIDE_ERR_INVALID;
        }
        o->t[k].name = strdup(t->name);
        if (!o->t[k].name)
            return PRIDE_ERR_NOMEM;
        o->t[k].offset = t->offset;
        o->t[k].count = t->count;
    }
    struct optim_tensor *s = malloc(nt * sizeof *s);
    if (!s)
        return PRIDE_ERR_NOMEM;
    memcpy(s, o->t, nt * sizeof *s);
    qsort(s, nt, sizeof *s, by_offset);
    int st = PRIDE_OK;
    for (size_t k = 1; k < nt; k++) {
        if (s[k].offset < s[k - 1].offset + s[k - 1].count) {
            snprintf(why, wl, "tensors '%s' [%zu, +%zu) and '%s' [%zu, +%zu) overlap",
                     s[k - 1].name, s[k - 1].offset, s[k - 1].count, s[k].name, s[k].offset,
                     s[k].count);
            st = PRIDE_ERR_INVALID;
            break;
        }
    }
    free(s);
    return st;
}

static int state_alloc(struct pride_optim *o)
{
    size_t n = o->n, words = (n + 63) / 64;
    o->m = calloc(n, sizeof *o->m);
    o->reqs = calloc(2 * o->nt, sizeof *o->reqs);
    if (!o->m || !o->reqs)
        return PRIDE_ERR_NOMEM;
    switch (o->algo) {
    case OPTIM_ADAMW:
        o->v = calloc(n, sizeof *o->v);
        return o->v ? PRIDE_OK : PRIDE_ERR_NOMEM;
    case OPTIM_GLOBAL_ADAMW:
        o->v = calloc(n, sizeof *o->v);
        o->gbuf = calloc(n, sizeof *o->gbuf);
        return o->v && o->gbuf ? PRIDE_OK : PRIDE_ERR_NOMEM;
    case OPTIM_GLOBAL_LION:
        o->gbuf = calloc(n, sizeof *o->gbuf);
        return o->gbuf ? PRIDE_OK : PRIDE_ERR_NOMEM;
    case OPTIM_DLION_AVG:
        o->counts = calloc(n, 1);
        o->bits = calloc(words, sizeof *o->bits);
        return o->counts && o->bits ? PRIDE_OK : PRIDE_ERR_NOMEM;
    case OPTIM_DLION_MAVO:
        o->bits = calloc(words, sizeof *o->bits);
        return o->bits ? PRIDE_OK : PRIDE_ERR_NOMEM;
    case OPTIM_LIONCUB:
        if (o->quant == OPTIM_QUANT_SIGN1)
            o->bits = calloc(words, sizeof *o->bits);
        else
            o->q = calloc(n, 1);
        if (!o->bits && !o->q)
            return PRIDE_ERR_NOMEM;
        if (o->sync == OPTIM_SYNC_SELECTIVE) {
            o->sample = calloc(2 * OPTIM_SELECTIVE_SAMPLE * o->nt, sizeof *o->sample);
            o->rankv = calloc(o->nt, sizeof *o->rankv);
            if (!o->sample || !o->rankv)
                return PRIDE_ERR_NOMEM;
        }
        return PRIDE_OK;
    case OPTIM_LION:
        return PRIDE_OK;
    }
    return PRIDE_OK;
}

/* Every rank must hold the same configuration, layout and parameters: one allreduce of
   {h, ~h} under MIN gives the minimum and (negated) the maximum of each hash. */
static int agree(struct pride_optim *o)
{
    uint64_t h[2] = {optim_config_hash(o) ^ optim_layout_hash(o) * 31, params_hash(o->x, o->n)};
    uint64_t v[4] = {h[0], ~h[0], h[1], ~h[1]};
    int st = pride_allreduce(o->ctx, v, v, 4, PRIDE_UINT64, PRIDE_MIN);
    if (st != PRIDE_OK)
        return st;
    if (v[0] != ~v[1])
        return pride_error(o->ctx, PRIDE_ERR_INVALID,
                           "pride_optim_create: ranks disagree on the optimizer configuration "
                           "or tensor layout (every rank must pass the same)");
    if (v[2] != ~v[3])
        return pride_error(o->ctx, PRIDE_ERR_INVALID,
                           "pride_optim_create: ranks start from different parameters, so "
                           "replicas would never be identical (initialize every rank from the "
                           "same seed, or broadcast rank 0's parameters first)");
    return PRIDE_OK;
}

int pride_optim_destroy(pride_optim_t *o)
{
    if (!o)
        return PRIDE_ERR_INVALID;
    for (size_t k = 0; k < o->nt; k++)
        free(o->t[k].name);
    free(o->t);
    free(o->m);
    free(o->v);
    free(o->gbuf);
    free(o->q);
    free(o->bits);
    free(o->counts);
    free(o->sample);
    free(o->rankv);
    free(o->reqs);
    free(o);
    return PRIDE_OK;
}

int pride_optim_create(pride_context_t *ctx, const pride_optim_config_t *cfg_in, float *params,
                       size_t nparams, const pride_tensor_t *tensors, size_t ntensors,
                       pride_optim_t **out)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    if (!cfg_in || !params || !tensors || !out || nparams == 0)
        return pride_error(ctx, PRIDE_ERR_INVALID,
                           "pride_optim_create: config, params, tensors and out must be given "
                           "and nparams must be > 0");
    if (cfg_in->size < offsetof(pride_optim_config_t, tie) + sizeof cfg_in->tie ||
        cfg_in->size > 4096)
        return pride_error(ctx, PRIDE_ERR_INVALID,
                           "pride_optim_create: config size %zu is not a pride_optim_config_t "
                           "(start from PRIDE_OPTIM_CONFIG_INIT)", cfg_in->size);
    pride_optim_config_t cfg = PRIDE_OPTIM_CONFIG_INIT;
    memcpy(&cfg, cfg_in, cfg_in->size < sizeof cfg ? cfg_in->size : sizeof cfg);

    char why[512] = "";
    struct pride_optim *o = calloc(1, sizeof *o);
    if (!o)
        return pride_error(ctx, PRIDE_ERR_NOMEM, "pride_optim_create: out of memory");
    o->ctx = ctx;
    o->rank = pride_rank(ctx);
    o->nranks = pride_nranks(ctx);
    o->x = params;
    o->k = optim_kernels();
    o->n = nparams;
    o->stats = (pride_optim_stats_t)PRIDE_OPTIM_STATS_INIT;
    int st = config_parse(o, &cfg, why, sizeof why);
    if (st == PRIDE_OK)
        st = layout_parse(o, tensors, ntensors, why, sizeof why);
    if (st == PRIDE_OK)
        st = state_alloc(o);
    if (st != PRIDE_OK) {
        if (st == PRIDE_ERR_NOMEM)
            snprintf(why, sizeof why, "out of memory for the state of %zu parameters", nparams);
        pride_error(ctx, st, "pride_optim_create: %s", why);
        goto fail;
    }
    lioncub_schedule_seek(o, 0);
    st = agree(o);
    if (st != PRIDE_OK)
        goto fail;
    *out = o;
    return PRIDE_OK;
fail:
    pride_optim_destroy(o);
    return st;
}

int pride_optim_step(pride_optim_t *o, const float *grads)
{
    if (!o)
        return PRIDE_ERR_INVALID;
    if (!grads)
        return pride_error(o->ctx, PRIDE_ERR_INVALID, "pride_optim_step: grads is NULL");
    pride_stats_t s0 = PRIDE_STATS_INIT, s1 = PRIDE_STATS_INIT;
    pride_get_stats(o->ctx, &s0);
    o->comm_ns = 0;
    o->step_syncs = 0;
    o->step_sync_elems = 0;
    int64_t t0 = optim_now_ns();
    int st = PRIDE_ERR_INVALID;
    switch (o->algo) {
    case OPTIM_LION:
        st = lion_step(o, grads);
        break;
    case OPTIM_ADAMW:
        st = adamw_step(o, grads);
        break;
    case OPTIM_GLOBAL_LION:
        st = lion_global_step(o, grads);
        break;
    case OPTIM_GLOBAL_ADAMW:
        st = adamw_global_step(o, grads);
        break;
    case OPTIM_DLION_MAVO:
    case OPTIM_DLION_AVG:
        st = lion_dlion_step(o, grads);
        break;
    case OPTIM_LIONCUB:
        st = lioncub_step(o, grads);
        break;
    }
    if (st != PRIDE_OK)
        return st;
    int64_t total = optim_now_ns() - t0;
    pride_get_stats(o->ctx, &s1);
    pride_optim_stats_t *s = &o->stats;
    o->step++;
    s->steps = o->step;
    s->last_bytes_sent = s1.bytes_sent - s0.bytes_sent;
    s->last_comm_s = (double)o->comm_ns * 1e-9;
    s->last_compute_s = (double)(total - o->comm_ns) * 1e-9;
    s->last_momentum_syncs = o->step_syncs;
    s->bytes_sent += s->last_bytes_sent;
    s->comm_s += s->last_comm_s;
    s->compute_s += s->last_compute_s;
    s->momentum_syncs += o->step_syncs;
    s->momentum_sync_elements += o->step_sync_elems;
    return PRIDE_OK;
}

int pride_optim_set_lr(pride_optim_t *o, float lr)
{
    if (!o)
        return PRIDE_ERR_INVALID;
    if (!(lr > 0) || !isfinite(lr))
        return pride_error(o->ctx, PRIDE_ERR_INVALID,
                           "pride_optim_set_lr: lr must be a finite number > 0 (got %g)",
                           (double)lr);
    o->lr = lr;
    return PRIDE_OK;
}

int pride_optim_stats(const pride_optim_t *o, pride_optim_stats_t *stats)
{
    if (!o)
        return PRIDE_ERR_INVALID;
    if (!stats || stats->size < sizeof(size_t) || stats->size > 4096)
        return pride_error(o->ctx, PRIDE_ERR_INVALID,
                           "pride_optim_stats: stats must be a pride_optim_stats_t (start from "
                           "PRIDE_OPTIM_STATS_INIT)");
    size_t want = stats->size;
    memcpy(stats, &o->stats, want < sizeof o->stats ? want : sizeof o->stats);
    stats->size = want;
    return PRIDE_OK;
}
