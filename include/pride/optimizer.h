/**
 * @file pride/optimizer.h
 * @brief Data-parallel optimizers over a flat float32 parameter buffer: Lion, AdamW,
 *        their global (allreduce) forms, Distributed Lion and Lion Cub.
 *
 * Every rank owns a full replica of the parameters, computes a gradient on its own
 * mini-batch and calls pride_optim_step(). The optimizer communicates through pride's
 * collectives and applies an update that is the same on every rank, so replicas stay
 * bit-identical. The buffer is split into named tensors (layers): Lion Cub's
 * quantization scale and momentum-synchronization decisions are per tensor.
 *
 * Algorithms (exact rules in ALGORITHMS.md):
 * - "lion", "adamw": one process, no communication (each rank steps on its own gradient;
 *   replicas stay identical only if the gradients are).
 * - "global-lion", "global-adamw": allreduce-average the float32 gradient, then the
 *   one-process rule. 32 bits per element on the wire (times the allreduce's factor).
 * - "dlion-mavo": per-rank momentum, majority vote of the signs (pride_vote).
 * - "dlion-avg": per-rank momentum, the update is the mean of the signs (pride_vote_count).
 * - "lioncub": per-rank momentum, a quantized direction ("sign1": majority vote; "l1",
 *   "l1-ternary": int8 sum of per-tensor L1-scaled levels, direction sign of the sum),
 *   and momentum averaged across ranks on a schedule.
 *
 * pride_optim_create() and pride_optim_step() are collective: every rank of the context
 * calls them in the same order with the same configuration and layout.
 */
#ifndef PRIDE_OPTIMIZER_H
#define PRIDE_OPTIMIZER_H

#include <stddef.h>

#include "pride/context.h"
#include "pride/vote.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One named tensor (layer): elements [offset, offset + count) of the parameter buffer. */
typedef struct pride_tensor {
    const char *name; /**< for messages and the checkpoint's layout hash; copied */
    size_t offset;    /**< first element in the flat buffer */
    size_t count;     /**< number of elements (> 0) */
} pride_tensor_t;

/**
 * Optimizer configuration. Start from PRIDE_OPTIM_CONFIG_INIT. Negative beta1, beta2
 * and eps mean "the algorithm's default" (Lion 0.9 / 0.99; AdamW 0.9 / 0.999 / 1e-8).
 */
typedef struct pride_optim_config {
    size_t size;           /**< = sizeof(pride_optim_config_t); set by PRIDE_OPTIM_CONFIG_INIT */
    const char *algorithm; /**< lion | adamw | global-lion | global-adamw | dlion-mavo |
                                dlion-avg | lioncub */
    const char *quant;     /**< lioncub only: sign1 | l1 | l1-ternary; NULL: sign1 */
    /** lioncub only; NULL: never.
        - "never";
        - "every:K": average momentum after steps 0, K, 2K, ... (K >= 1);
        - "exp[:k]": after steps t_0 = 0, t_{j+1} = t_j + ceil(2^(j/k)) (k >= 1, default 16);
        - "selective[:F]": every step, measure the cross-rank variance of momentum per
          tensor, E[m^2] - E[m]^2, on a sample of up to 64 elements per tensor (the same
          elements on every rank, drawn from seed and step), and average the momentum of
          the ceil(F * ntensors) tensors with the largest variance (0 < F <= 1, default
          0.25), skipping tensors whose variance is below 1e-5 of E[m^2] (no disagreement
          beyond rounding). */
    const char *momentum_sync;
    float lr;               /**< learning rate, > 0 (pride_optim_set_lr changes it later) */
    float wd;               /**< decoupled weight decay, >= 0 */
    float beta1;            /**< in [0, 1); negative: default */
    float beta2;            /**< in [0, 1); negative: default */
    float eps;              /**< AdamW only, > 0; negative: default */
    unsigned long long seed; /**< draws the selective sample (the same on every rank) */
    /** majority-vote ties (sign1, dlion-mavo), the same on every rank. ALTERNATE (the
        default) alternates with the step as well as the element: element i of step t
        goes positive when i + t is even, so no weight is pushed one way by ties. */
    pride_tie_t tie;
} pride_optim_config_t;

/** Initializer for pride_optim_config_t: Lion with lr 1e-4, no weight decay. */
#define PRIDE_OPTIM_CONFIG_INIT                                                            \
    { sizeof(pride_optim_config_t), "lion", NULL, NULL, 1e-4f, 0.0f, -1.0f, -1.0f, -1.0f, 0, \
      PRIDE_TIE_ALTERNATE }

/** An optimizer bound to a context and a parameter buffer. Opaque. */
typedef struct pride_optim pride_optim_t;

/** What an optimizer did: the last step and the total since pride_optim_create(). */
typedef struct pride_optim_stats {
    size_t size; /**< = sizeof(pride_optim_stats_t); set by PRIDE_OPTIM_STATS_INIT */
    unsigned long long steps;       /**< the step counter (restored by pride_optim_load) */
    unsigned long long last_bytes_sent;       /**< payload bytes this rank sent in the last step */
    double last_comm_s;             /**< seconds the last step waited on communication */
    double last_compute_s;          /**< the rest of the last step's time */
    unsigned long long last_momentum_syncs;   /**< tensors whose momentum the last step averaged */
    unsigned long long bytes_sent;  /**< totals over every step since create */
    double comm_s;                  /**< total seconds waiting on communication */
    double compute_s;               /**< total seconds computing */
    unsigned long long momentum_syncs;        /**< total tensor momentum averagings */
    unsigned long long momentum_sync_elements; /**< total elements whose momentum was averaged */
} pride_optim_stats_t;

/** Initializer for pride_optim_stats_t. */
#define PRIDE_OPTIM_STATS_INIT { sizeof(pride_optim_stats_t), 0, 0, 0.0, 0.0, 0, 0, 0.0, 0.0, 0, 0 }

/**
 * @brief Create an optimizer over @p params (collective).
 *
 * Checks the configuration and layout, allocates the state (momentum, and the second
 * moment for AdamW; all zero), and checks with one small allreduce that every rank
 * has the same configuration, layout and initial parameters.
 * @param ctx the context whose ranks train together
 * @param cfg the configuration (see pride_optim_config_t)
 * @param params nparams float32 parameters, updated in place by pride_optim_step();
 *        must stay valid until pride_optim_destroy()
 * @param nparams number of parameters in @p params
 * @param tensors ntensors non-overlapping tensors inside [0, nparams); they need not
 *        cover every element (uncovered elements are never updated)
 * @param ntensors number of entries in @p tensors (>= 1)
 * @param[out] out the optimizer, written only on success
 * @return PRIDE_OK; PRIDE_ERR_INVALID with a sentence in pride_last_error() for an
 *         unknown name, an out-of-range number, overlapping or out-of-range tensors,
 *         too many ranks for the quantizer's int8 sum (l1 and l1-ternary need
 *         nranks <= 127), or ranks that disagree; PRIDE_ERR_NOMEM; a collective's status
 */
int pride_optim_create(pride_context_t *ctx, const pride_optim_config_t *cfg, float *params,
                       size_t nparams, const pride_tensor_t *tensors, size_t ntensors,
                       pride_optim_t **out);

/**
 * @brief Take one step with this rank's gradient (collective).
 * @param opt the optimizer
 * @param grads nparams float32 gradients of this rank; not modified
 * @return PRIDE_OK, or a collective's status (the parameters are then undefined)
 */
int pride_optim_step(pride_optim_t *opt, const float *grads);

/**
 * @brief Set the learning rate of the steps that follow (a schedule). Every rank must
 *        set the same value before the same step, or the replicas drift apart. The
 *        current rate is part of the state pride_optim_save() writes.
 * @return PRIDE_OK, or PRIDE_ERR_INVALID unless 0 < lr < infinity
 */
int pride_optim_set_lr(pride_optim_t *opt, float lr);

/**
 * @brief Read the step counter, bytes sent and time spent.
 * @param opt the optimizer
 * @param[out] stats filled up to stats->size bytes (start from PRIDE_OPTIM_STATS_INIT)
 */
int pride_optim_stats(const pride_optim_t *opt, pride_optim_stats_t *stats);

/**
 * @brief Write this rank's state (parameters, momentum, second moment, step counter,
 *        learning rate) to @p path, atomically: a temporary file is written, synced and renamed.
 *
 * The file carries a magic, a format version, the configuration, the rank, the rank
 * count, the layout and a CRC32; each rank writes its own file (momentum differs
 * between ranks).
 * @return PRIDE_OK, or PRIDE_ERR_IO with a sentence in pride_last_error()
 */
int pride_optim_save(const pride_optim_t *opt, const char *path);

/**
 * @brief Restore the state written by pride_optim_save() on the same rank of a job with
 *        the same configuration (the learning rate may differ: the file's is restored)
 *        and layout. Nothing changes unless the whole file checks.
 * @return PRIDE_OK; PRIDE_ERR_IO for a missing, short, truncated or damaged file (bad
 *         magic, version or CRC); PRIDE_ERR_INVALID for a file from another
 *         configuration, layout, rank or rank count; the sentence in pride_last_error()
 *         says which
 */
int pride_optim_load(pride_optim_t *opt, const char *path);

/**
 * @brief Free the optimizer (not the parameter buffer). Not collective.
 * @return PRIDE_OK, or PRIDE_ERR_INVALID for NULL
 */
int pride_optim_destroy(pride_optim_t *opt);

#ifdef __cplusplus
}
#endif
#endif
