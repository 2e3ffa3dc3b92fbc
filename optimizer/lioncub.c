/*
 * Lion Cub: Distributed Lion with a quantizer suited to Lion and momentum averaged
 * across ranks only sometimes, and only where it matters.
 *
 * The one idea: an int8 sum of per-rank levels is exact only if it cannot overflow,
 * so each rank's levels are bounded by s = floor(127 / N) and the N-rank sum stays
 * within [-127, 127]. Quantizers:
 *   sign1       one bit per element, majority vote (as D-Lion MaVo);
 *   l1          q = clip(round(c / mean|c| * s/2), -s, s) per tensor, the direction
 *               is sign(sum of q) (sign(0) = 0: no step where the ranks cancel);
 *   l1-ternary  the same with s = 1.
 * Levels of tensor k go on the wire (pride_iallreduce) while tensor k+1 is being
 * quantized; momentum averages (also non-blocking) overlap the updates and the vote.
 * Momentum schedules: every:K, exp:k (t_0 = 0, t_{j+1} = t_j + ceil(2^(j/k))), and
 * selective:F (the ceil(F * ntensors) tensors whose momentum varies most across ranks,
 * measured every step on a sample that every rank draws identically from seed and step).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"

int lioncub_levels(enum optim_quant quant, int nranks)
{
    if (nranks < 1 || nranks > 127)
        return 0;
    return quant == OPTIM_QUANT_L1 ? 127 / nranks : 1;
}

/* mean|c| over one tensor and the levels it gives; q = 0 throughout when the mean is 0
   or not finite. */
static void quantize(const struct optim_kernels *k, float *m, const float *g, size_t n,
                     float b1, float b2, int advance, int s, int8_t *q)
{
    double sum = k->abs_sum(m, g, n, b1);
    float mean = (float)(n ? sum / (double)n : 0);
    if (!(mean > 0) || !isfinite(mean)) {
        if (advance) /* no levels (s = 0 clips every one to 0), the momentum still moves */
            k->quantize(m, g, n, b1, b2, 1, 1.0f, 0.0f, 0, q);
        else
            memset(q, 0, n);
        return;
    }
    k->quantize(m, g, n, b1, b2, advance, mean, 0.5f * (float)s, s, q);
}

void lioncub_quantize_l1(const float *m, const float *g, size_t n, float b1, int s, int8_t *q)
{
    /* without advance the momentum is only read */
    quantize(optim_kernels(), (float *)m, g, n, b1, 0, 0, s, q);
}

void lioncub_quantize_l1_advance(const struct optim_kernels *k, float *m, const float *g,
                                 size_t n, float b1, float b2, int s, int8_t *q)
{
    quantize(k, m, g, n, b1, b2, 1, s, q);
}

/* Parse an unsigned integer >= 1 that is the whole of s. */
static int parse_count(const char *s, unsigned *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v < 1 || v > 1000000000UL)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int lioncub_parse_sync(struct pride_optim *o, const char *spec, char *why, size_t wl)
{
    o->sync_k = 0;
    o->sync_fraction = 0;
    if (!strcmp(spec, "never")) {
        o->sync = OPTIM_SYNC_NEVER;
        snprintf(o->sync_spec, sizeof o->sync_spec, "never");
        return PRIDE_OK;
    }
    if (!strncmp(spec, "every:", 6)) {
        o->sync = OPTIM_SYNC_EVERY;
        if (parse_count(spec + 6, &o->sync_k) == 0) {
            snprintf(o->sync_spec, sizeof o->sync_spec, "every:%u", o->sync_k);
            return PRIDE_OK;
        }
        snprintf(why, wl, "momentum_sync '%s': every:K needs a whole number K >= 1", spec);
        return PRIDE_ERR_INVALID;
    }
    if (!strcmp(spec, "exp") || !strncmp(spec, "exp:", 4)) {
        o->sync = OPTIM_SYNC_EXP;
        o->sync_k = 16;
        if (spec[3] == '\0' || parse_count(spec + 4, &o->sync_k) == 0) {
            snprintf(o->sync_spec, sizeof o->sync_spec, "exp:%u", o->sync_k);
            return PRIDE_OK;
        }
        snprintf(why, wl, "momentum_sync '%s': exp:k needs a whole number k >= 1", spec);
        return PRIDE_ERR_INVALID;
    }
    if (!strcmp(spec, "selective") || !strncmp(spec, "selective:", 10)) {
        o->sync = OPTIM_SYNC_SELECTIVE;
        double f = 0.25;
        char *end = NULL;
        if (spec[9] == ':')
            f = strtod(spec + 10, &end);
        if (spec[9] == '\0' || (end != spec + 10 && *end == '\0' && f > 0 && f <= 1)) {
            o->sync_fraction = (float)f;
            snprintf(o->sync_spec, sizeof o->sync_spec, "selective:%.6g", f);
            return PRIDE_OK;
        }
        snprintf(why, wl, "momentum_sync '%s': selective:F needs a fraction 0 < F <= 1", spec);
        return PRIDE_ERR_INVALID;
    }
    snprintf(why, wl, "unknown momentum_sync '%s' (never, every:K, exp[:k] or selective[:F])",
             spec);
    return PRIDE_ERR_INVALID;
}

/* Move the exp schedule to its next sync step: t_{j+1} = t_j + ceil(2^(j/k)). */
static void exp_advance(struct pride_optim *o)
{
    double gap = ceil(exp2((double)o->exp_j / (double)o->sync_k));
    if (gap >= 0x1p62 || o->exp_next > UINT64_MAX - (uint64_t)gap)
        o->exp_next = UINT64_MAX;
    else
        o->exp_next += (uint64_t)gap;
    o->exp_j++;
}

void lioncub_schedule_seek(struct pride_optim *o, uint64_t t)
{
    o->exp_j = 0;
    o->exp_next = 0;
    if (o->sync != OPTIM_SYNC_EXP)
        return;
    while (o->exp_next < t)
        exp_advance(o);
}

int lioncub_sync_due(struct pride_optim *o, uint64_t t)
{
    switch (o->sync) {
    case OPTIM_SYNC_EVERY:
        return t % o->sync_k == 0;
    case OPTIM_SYNC_EXP:
        while (o->exp_next < t)
            exp_advance(o);
        if (o->exp_next != t)
            return 0;
        exp_advance(o);
        return 1;
    case OPTIM_SYNC_NEVER:
    case OPTIM_SYNC_SELECTIVE:
        return 0;
    }
    return 0;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static int by_variance(const void *a, const void *b)
{
    const struct optim_rank *x = a, *y = b;
    if (x->var != y->var)
        return x->var < y->var ? 1 : -1;
    return (x->k > y->k) - (x->k < y->k);
}

/* Selective: average a sample of m and m^2 per tensor across ranks, rank the tensors by
   the mean of E[m^2] - E[m]^2 over the sample, and return how many of o->rankv (best
   first) to sync. Every rank computes the same ranking from the same averages. */
static int selective_pick(struct pride_optim *o, size_t *nsel)
{
    size_t total = 0;
    uint64_t rs = o->seed ^ (o->step * UINT64_C(0xD1B54A32D192ED03));
    for (size_t k = 0; k < o->nt; k++) {
        const struct optim_tensor *t = &o->t[k];
        size_t S = t->count < OPTIM_SELECTIVE_SAMPLE ? t->count : OPTIM_SELECTIVE_SAMPLE;
        const float *m = o->m + t->offset;
        for (size_t i = 0; i < S; i++) {
            size_t e = t->count <= OPTIM_SELECTIVE_SAMPLE ? i : (size_t)(splitmix(&rs) % t->count);
            o->sample[total + i] = m[e];
            o->sample[total + S + i] = m[e] * m[e];
        }
        total += 2 * S;
    }
    int64_t t0 = optim_comm_begin();
    int st = pride_allreduce(o->ctx, o->sample, o->sample, total, PRIDE_FLOAT32, PRIDE_AVG);
    optim_comm_end(o, t0);
    if (st != PRIDE_OK)
        return st;
    size_t pos = 0, positive = 0;
    for (size_t k = 0; k < o->nt; k++) {
        const struct optim_tensor *t = &o->t[k];
        size_t S = t->count < OPTIM_SELECTIVE_SAMPLE ? t->count : OPTIM_SELECTIVE_SAMPLE;
        double var = 0, sqsum = 0;
        for (size_t i = 0; i < S; i++) {
            double mean = o->sample[pos + i], sq = o->sample[pos + S + i];
            double d = sq - mean * mean;
            var += d > 0 ? d : 0;
            sqsum += sq;
        }
        pos += 2 * S;
        /* below 1e-5 of E[m^2] the difference is the rounding of the average itself */
        o->rankv[k].var = var > 1e-5 * sqsum ? var / (double)S : 0;
        o->rankv[k].k = k;
        positive += o->rankv[k].var > 0;
    }
    qsort(o->rankv, o->nt, sizeof *o->rankv, by_variance);
    size_t want = (size_t)ceil((double)o->sync_fraction * (double)o->nt);
    *nsel = want < positive ? want : positive;
    return PRIDE_OK;
}

/* Start averaging the momentum of the tensors the schedule picks for this step (slots
   nt..2nt-1); the momentum must not be touched until they are waited for. */
static int sync_start(struct pride_optim *o)
{
    size_t nsel = 0;
    int all = 0;
    if (o->sync == OPTIM_SYNC_SELECTIVE) {
        int st = selective_pick(o, &nsel);
        if (st != PRIDE_OK)
            return st;
    } else {
        all = lioncub_sync_due(o, o->step);
        nsel = all ? o->nt : 0;
    }
    for (size_t i = 0; i < nsel; i++) {
        size_t k = all ? i : o->rankv[i].k;
        int st = optim_istart(o, o->nt + k, k, o->m, o->m, PRIDE_FLOAT32, PRIDE_AVG);
        if (st != PRIDE_OK)
            return st;
        o->step_syncs++;
        o->step_sync_elems += o->t[k].count;
    }
    return PRIDE_OK;
}

int lioncub_step(struct pride_optim *o, const float *grads)
{
    int st = PRIDE_OK;
    if (o->quant == OPTIM_QUANT_SIGN1) {
        memset(o->bits, 0, (o->n + 63) / 64 * sizeof *o->bits);
        for (size_t k = 0; k < o->nt; k++)
            o->k->pack(o->m, grads, o->bits, o->t[k].offset, o->t[k].count, o->beta1,
                       o->beta2);
    } else {
        int s = lioncub_levels(o->quant, o->nranks);
        for (size_t k = 0; k < o->nt && st == PRIDE_OK; k++) {
            size_t off = o->t[k].offset, cnt = o->t[k].count;
            lioncub_quantize_l1_advance(o->k, o->m + off, grads + off, cnt, o->beta1, o->beta2, s,
                                        o->q + off);
            st = optim_istart(o, k, k, o->q, o->q, PRIDE_INT8, PRIDE_SUM);
        }
    }
    if (st == PRIDE_OK)
        st = sync_start(o);
    if (st == PRIDE_OK && o->quant == OPTIM_QUANT_SIGN1) {
        st = lion_vote(o);
        for (size_t k = 0; k < o->nt && st == PRIDE_OK; k++)
            o->k->apply_bits(o->x, o->bits, o->t[k].offset, o->t[k].count, o->lr, o->wd);
    }
    if (o->quant != OPTIM_QUANT_SIGN1) {
        for (size_t k = 0; k < o->nt && st == PRIDE_OK; k++) {
            st = optim_wait(o, k);
            if (st == PRIDE_OK)
                o->k->apply_levels(o->x + o->t[k].offset, o->q + o->t[k].offset, o->t[k].count,
                                   o->lr, o->wd);
        }
    }
    for (size_t k = 0; k < o->nt && st == PRIDE_OK; k++)
        if (o->reqs[o->nt + k])
            st = optim_wait(o, o->nt + k);
    return st == PRIDE_OK ? st : optim_drain(o, st);
}
