/*
 * Lion in three forms: one process ("lion"), on the allreduce-averaged gradient
 * ("global-lion"), and Distributed Lion ("dlion-mavo", "dlion-avg").
 *
 * The one idea: Lion's update is the sign of an interpolated momentum, so ranks that
 * keep their own momentum can agree on the update by exchanging one bit per element
 * (bit set = positive; sign(0) packs as negative) and combining the bits by majority
 * (pride_vote, ties by the configured rule) or by mean (pride_vote_count:
 * delta = (2*count - N) / N), instead of allreducing 32-bit gradients. The weight update x -= lr * (delta + wd * x) then uses
 * only numbers every rank holds, so replicas stay bit-identical.
 */
#include <string.h>

#include "optim.h"

int lion_step(struct pride_optim *o, const float *grads)
{
    for (size_t k = 0; k < o->nt; k++) {
        size_t off = o->t[k].offset;
        o->k->rule(o->x + off, o->m + off, grads + off, o->t[k].count, o->lr, o->wd, o->beta1,
                   o->beta2);
    }
    return PRIDE_OK;
}

/* One allreduce per tensor, all started first: tensor k is updated while the
   allreduces of the tensors after it are still on the wire. */
int lion_global_step(struct pride_optim *o, const float *grads)
{
    int st = PRIDE_OK;
    for (size_t k = 0; k < o->nt && st == PRIDE_OK; k++)
        st = optim_istart(o, k, k, grads, o->gbuf, PRIDE_FLOAT32, PRIDE_AVG);
    for (size_t k = 0; k < o->nt && st == PRIDE_OK; k++) {
        st = optim_wait(o, k);
        if (st != PRIDE_OK)
            break;
        size_t off = o->t[k].offset;
        o->k->rule(o->x + off, o->m + off, o->gbuf + off, o->t[k].count, o->lr, o->wd,
                   o->beta1, o->beta2);
    }
    return st == PRIDE_OK ? st : optim_drain(o, st);
}

/* x -= lr * (delta + wd * x) with delta = (2 * count - N) / N, the mean of the signs. */
static void lion_apply_counts(float *restrict x, const uint8_t *restrict counts, size_t off,
                              size_t count, int nranks, float lr, float wd)
{
    x += off;
    counts += off;
    const float fn = (float)nranks;
    for (size_t i = 0; i < count; i++) {
        float d = (float)(2 * (int)counts[i] - nranks) / fn;
        x[i] = x[i] - lr * (d + wd * x[i]);
    }
}

/* Majority vote of o->bits in place. A tie rule that favours element parity alone
   would push a weight whose ranks keep splitting evenly the same way at every step, so
   ALTERNATE also alternates with the step: on odd steps the votes go in inverted and
   come out inverted (majority(~b) = ~majority(b) except on ties, where the rule's
   parity is mirrored). */
int lion_vote(struct pride_optim *o)
{
    size_t words = (o->n + 63) / 64;
    int flip = o->tie == PRIDE_TIE_ALTERNATE && (o->step & 1);
    if (flip)
        for (size_t w = 0; w < words; w++)
            o->bits[w] = ~o->bits[w];
    int64_t t0 = optim_comm_begin();
    int st = pride_vote(o->ctx, o->bits, o->bits, o->n, o->tie);
    optim_comm_end(o, t0);
    if (flip)
        for (size_t w = 0; w < words; w++)
            o->bits[w] = ~o->bits[w];
    return st;
}

int lion_dlion_step(struct pride_optim *o, const float *grads)
{
    memset(o->bits, 0, (o->n + 63) / 64 * sizeof *o->bits);
    for (size_t k = 0; k < o->nt; k++)
        o->k->pack(o->m, grads, o->bits, o->t[k].offset, o->t[k].count, o->beta1, o->beta2);
    int st;
    if (o->algo == OPTIM_DLION_MAVO) {
        st = lion_vote(o);
    } else {
        int64_t t0 = optim_comm_begin();
        st = pride_vote_count(o->ctx, o->bits, o->counts, o->n);
        optim_comm_end(o, t0);
    }
    if (st != PRIDE_OK)
        return st;
    for (size_t k = 0; k < o->nt; k++) {
        if (o->algo == OPTIM_DLION_MAVO)
            o->k->apply_bits(o->x, o->bits, o->t[k].offset, o->t[k].count, o->lr, o->wd);
        else
            lion_apply_counts(o->x, o->counts, o->t[k].offset, o->t[k].count, o->nranks, o->lr,
                              o->wd);
    }
    return PRIDE_OK;
}
