/*
 * The optimizer behind pride_optim_t, shared by the algorithm files. Internal.
 *
 * An algorithm is a step function over the whole buffer, walking the tensors; it talks
 * to other ranks only through the public collectives, and times its waits with
 * optim_comm_begin / optim_comm_end so the stats can split communication from
 * computation.
 */
#ifndef PRIDE_OPTIM_H
#define PRIDE_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "pride/pride.h"

enum optim_algo {
    OPTIM_LION,
    OPTIM_ADAMW,
    OPTIM_GLOBAL_LION,
    OPTIM_GLOBAL_ADAMW,
    OPTIM_DLION_MAVO,
    OPTIM_DLION_AVG,
    OPTIM_LIONCUB
};

enum optim_quant { OPTIM_QUANT_SIGN1, OPTIM_QUANT_L1, OPTIM_QUANT_L1_TERNARY };

enum optim_sync { OPTIM_SYNC_NEVER, OPTIM_SYNC_EVERY, OPTIM_SYNC_EXP, OPTIM_SYNC_SELECTIVE };

/* Elements per tensor whose momentum the selective schedule compares across ranks. */
#define OPTIM_SELECTIVE_SAMPLE 64

struct optim_rank {
    double var;
    size_t k;
};

/* The element-wise passes, one table per CPU path (kernels.c); every path gives the
   portable loops' results bit for bit. */
struct optim_kernels {
    /* The one-process Lion rule over one tensor (ALGORITHMS.md): x = x * (1 - lr*wd),
       x = x - lr * sign(b1*m + (1-b1)*g) with sign(0) = 0, m = b2*m + (1-b2)*g. */
    void (*rule)(float *x, float *m, const float *g, size_t n, float lr, float wd, float b1,
                 float b2);
    /* Pack bit i = (b1*m[i] + (1-b1)*g[i] > 0) for i in [off, off+count) into bits
       (already zero there) and move m to b2*m + (1-b2)*g. */
    void (*pack)(float *m, const float *g, uint64_t *bits, size_t off, size_t count, float b1,
                 float b2);
    /* x -= lr * (d + wd * x) on [off, off+count), d = +1 for set bits, -1 for clear. */
    void (*apply_bits)(float *x, const uint64_t *bits, size_t off, size_t count, float lr,
                       float wd);
    /* Sum of |b1*m + (1-b1)*g| over the finite ones, in double, in a fixed order. */
    double (*abs_sum)(const float *m, const float *g, size_t n, float b1);
    /* q[i] = clip(round(c / mean * half), -s, s) with c = b1*m + (1-b1)*g (0 where c is
       not finite), and with advance also m = b2*m + (1-b2)*g, in the same pass. */
    void (*quantize)(float *m, const float *g, size_t n, float b1, float b2, int advance,
                     float mean, float half, int s, int8_t *q);
    /* x -= lr * (sign(q) + wd * x), sign(0) = 0. */
    void (*apply_levels)(float *x, const int8_t *q, size_t n, float lr, float wd);
};

/* The table of a path (a pride_kpath_t), or NULL when this CPU cannot run it. */
const struct optim_kernels *optim_kernels_path(int path);
/* The table of the path the process uses (the best one, or PRIDE_KERNELS). */
const struct optim_kernels *optim_kernels(void);

struct optim_tensor {
    char *name;
    size_t offset, count;
};

struct pride_optim {
    pride_context_t *ctx;
    int rank, nranks;
    enum optim_algo algo;
    enum optim_quant quant;
    enum optim_sync sync;
    unsigned sync_k;      /* every:K period, exp:k rate */
    float sync_fraction;  /* selective */
    float lr, wd, beta1, beta2, eps;
    uint64_t seed;
    pride_tie_t tie;
    char sync_spec[48];   /* normalized momentum_sync, for messages and checkpoints */

    const struct optim_kernels *k;
    float *x;
    size_t n;
    struct optim_tensor *t;
    size_t nt;

    uint64_t step;          /* steps taken */
    uint64_t exp_j;         /* exp schedule: index of the next sync step ... */
    uint64_t exp_next;      /* ... and that step */

    float *m;               /* momentum (every algorithm) */
    float *v;               /* AdamW second moment, else NULL */
    float *gbuf;            /* global-*: the averaged gradient */
    int8_t *q;              /* lioncub l1: levels, summed in place */
    uint64_t *bits;         /* sign vectors: ceil(n/64) words */
    uint8_t *counts;        /* dlion-avg: votes per element */
    float *sample;          /* selective: 2 * OPTIM_SELECTIVE_SAMPLE * nt */
    struct optim_rank *rankv; /* selective: tensors with their momentum variance */
    pride_request_t **reqs; /* in-flight allreduces: 2 * nt (levels or gradients, momentum) */

    int64_t comm_ns;        /* this step's waiting, summed by optim_comm_end */
    unsigned long long step_syncs, step_sync_elems;
    pride_optim_stats_t stats;
};

/* Monotonic clock in ns. */
int64_t optim_now_ns(void);

/* Bracket a blocking collective or wait; the time between counts as communication. */
static inline int64_t optim_comm_begin(void) { return optim_now_ns(); }
static inline void optim_comm_end(struct pride_optim *o, int64_t t0)
{
    o->comm_ns += optim_now_ns() - t0;
}

/* Start an allreduce of tensor k's elements of send into recv (in place when equal),
   as request o->reqs[slot]. */
int optim_istart(struct pride_optim *o, size_t slot, size_t k, const void *send, void *recv,
                 pride_dtype_t dt, pride_op_t op);
/* Wait for request o->reqs[slot], timed as communication. */
int optim_wait(struct pride_optim *o, size_t slot);
/* After a failure: wait for every request still in flight (their buffers are ours) and
   return st. */
int optim_drain(struct pride_optim *o, int st);

/* Hashes that tell configurations, layouts and buffers apart (optim.c). */
uint64_t optim_config_hash(const struct pride_optim *o);
uint64_t optim_layout_hash(const struct pride_optim *o);
const char *optim_algo_name(enum optim_algo a);
const char *optim_quant_name(enum optim_quant q);

/* Step functions (lion.c, adamw.c, lioncub.c). grads: this rank's gradient. */
int lion_step(struct pride_optim *o, const float *grads);
int lion_global_step(struct pride_optim *o, const float *grads);
int lion_dlion_step(struct pride_optim *o, const float *grads);
int adamw_step(struct pride_optim *o, const float *grads);
int adamw_global_step(struct pride_optim *o, const float *grads);
int lioncub_step(struct pride_optim *o, const float *grads);

/* Majority vote of o->bits in place under o->tie; ALTERNATE ties also alternate with
   the step (lion.c). Timed as communication. */
int lion_vote(struct pride_optim *o);

/* Lion Cub pieces exposed for tests (lioncub.c). */
/* Levels s of the int8 quantizers for nranks ranks: floor(127 / nranks) for l1, 1 for
   l1-ternary; 0 when nranks is too large for an int8 sum. */
int lioncub_levels(enum optim_quant quant, int nranks);
/* q[i] = clip(round(c[i] / mean|c| * s/2), -s, s) with c = beta1*m + (1-beta1)*g over one
   tensor; q = 0 when mean|c| is 0 or not finite, and for elements whose c is not finite. */
void lioncub_quantize_l1(const float *m, const float *g, size_t n, float beta1, int s, int8_t *q);
/* The same levels, with m moved to beta2*m + (1-beta2)*g in the same pass (the l1 step:
   one pass for mean|c|, one for levels and momentum). */
void lioncub_quantize_l1_advance(const struct optim_kernels *k, float *m, const float *g,
                                 size_t n, float beta1, float beta2, int s, int8_t *q);
/* Parse a momentum_sync spec into o->sync, sync_k, sync_fraction, sync_spec; PRIDE_OK or
   PRIDE_ERR_INVALID with a sentence in why. */
int lioncub_parse_sync(struct pride_optim *o, const char *spec, char *why, size_t wl);
/* Whether the schedule (every, exp) syncs after step t; advances the exp state. */
int lioncub_sync_due(struct pride_optim *o, uint64_t t);
/* Reset the exp schedule and replay it up to step t (after a checkpoint load). */
void lioncub_schedule_seek(struct pride_optim *o, uint64_t t);

#endif
