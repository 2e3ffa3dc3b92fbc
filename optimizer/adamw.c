/*
 * AdamW, the baseline: one process ("adamw") and on the allreduce-averaged gradient
 * ("global-adamw").
 *
 * The one idea: with the gradient averaged before the rule, both moments are the same
 * on every rank, so the one-process rule keeps replicas identical at the price of a
 * float32 allreduce per step. Bias correction uses the step count t = steps + 1.
 */
#include <math.h>

#include "optim.h"

static void adamw_rule(float *restrict x, float *restrict m, float *restrict v,
                       const float *restrict g, size_t n, const struct pride_optim *o)
{
    const double t = (double)(o->step + 1);
    const float bc1 = (float)(1.0 - pow((double)o->beta1, t));
    const float bc2 = (float)(1.0 - pow((double)o->beta2, t));
    const float b1 = o->beta1, b2 = o->beta2, lr = o->lr, eps = o->eps;
    const float decay = 1.0f - lr * o->wd;
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        float mhat = m[i] / bc1, vhat = v[i] / bc2;
        x[i] = x[i] * decay - lr * mhat / (sqrtf(vhat) + eps);
    }
}

int adamw_step(struct pride_optim *o, const float *grads)
{
    for (size_t k = 0; k < o->nt; k++) {
        size_t off = o->t[k].offset;
        adamw_rule(o->x + off, o->m + off, o->v + off, grads + off, o->t[k].count, o);
    }
    return PRIDE_OK;
}

/* One allreduce per tensor, all started first, each tensor updated as its average lands. */
int adamw_global_step(struct pride_optim *o, const float *grads)
{
    int st = PRIDE_OK;
    for (size_t k = 0; k < o->nt && st == PRIDE_OK; k++)
        st = optim_istart(o, k, k, grads, o->gbuf, PRIDE_FLOAT32, PRIDE_AVG);
    for (size_t k = 0; k < o->nt && st == PRIDE_OK; k++) {
        st = optim_wait(o, k);
        if (st != PRIDE_OK)
            break;
        size_t off = o->t[k].offset;
        adamw_rule(o->x + off, o->m + off, o->v + off, o->gbuf + off, o->t[k].count, o);
    }
    return st == PRIDE_OK ? st : optim_drain(o, st);
}
