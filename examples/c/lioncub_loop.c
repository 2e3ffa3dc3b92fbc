/*
 * lioncub_loop.c: Lion Cub in a data-parallel training loop (docs/lioncub-guide.md).
 * A linear model y = W x + b (two tensors, "weight" and "bias") learns a teacher from
 * mini-batches that differ on every rank; pride_optim_step() turns the ranks' gradients
 * into one update. Run it as
 *
 *     pride-run -n 4 ./lioncub_loop [QUANT [MOMENTUM_SYNC]]      (default: l1 every:10)
 *
 * The one idea: the program checks what a trainer relies on, on every rank -- the
 * mean loss falls, the parameters are bit-identical across ranks (a hash of their
 * bytes, compared with an allreduce of MIN and MAX), and training resumed from a
 * checkpoint reproduces the same parameters bit for bit -- and exits 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L /* getpid */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <pride/pride.h>

#define IN 16
#define OUT 4
#define NPARAMS (OUT * IN + OUT) /* weight[OUT][IN], then bias[OUT] */
#define BATCH 32
#define STEPS 300
#define SAVE_AT 150

/* splitmix64: a counter-based generator, so a (rank, step) pair names its batch */
static float loop_uniform(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) / (float)(1 << 23) - 1.0f; /* [-1, 1) */
}

/* This rank's mini-batch at step t: loss and gradient of the mean squared error. */
static float loop_grad(const float *p, int rank, int t, float *g)
{
    float teacher[NPARAMS], x[IN], loss = 0;
    uint64_t s = 42; /* the same teacher on every rank */
    for (int i = 0; i < NPARAMS; i++)
        teacher[i] = loop_uniform(&s);
    s = ((uint64_t)rank << 32) ^ (uint64_t)t; /* a different batch per rank and step */
    memset(g, 0, NPARAMS * sizeof *g);
    for (int k = 0; k < BATCH; k++) {
        for (int i = 0; i < IN; i++)
            x[i] = loop_uniform(&s);
        for (int o = 0; o < OUT; o++) {
            float pred = p[OUT * IN + o], want = teacher[OUT * IN + o];
            for (int i = 0; i < IN; i++) {
                pred += p[o * IN + i] * x[i];
                want += teacher[o * IN + i] * x[i];
            }
            float e = pred - want;
            loss += e * e / BATCH;
            for (int i = 0; i < IN; i++)
                g[o * IN + i] += 2 * e * x[i] / BATCH;
            g[OUT * IN + o] += 2 * e / BATCH;
        }
    }
    return loss;
}

/* Steps [from, to); the mean loss over ranks of the first and the last step. */
static int loop_train(pride_context_t *ctx, pride_optim_t *opt, float *params, int from, int to,
                      float *first, float *last)
{
    float grads[NPARAMS];
    for (int t = from; t < to; t++) {
        float loss = loop_grad(params, pride_rank(ctx), t, grads);
        int st = pride_optim_step(opt, grads);
        if (st == PRIDE_OK && (t == from || t == to - 1))
            st = pride_allreduce(ctx, &loss, t == from ? first : last, 1, PRIDE_FLOAT32, PRIDE_AVG);
        if (st != PRIDE_OK)
            return st;
    }
    return PRIDE_OK;
}

/* FNV-1a over the parameters' bytes: equal hashes on every rank mean equal bits. */
static uint64_t loop_hash(const float *p)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < NPARAMS * sizeof *p; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int main(int argc, char **argv)
{
    pride_context_t *ctx = NULL;
    pride_optim_t *opt = NULL;
    float params[NPARAMS] = {0}, final[NPARAMS], first, last, unused;
    char ckpt[64];
    int rc = 1, st = pride_init(NULL, &ctx);
    if (st != PRIDE_OK) {
        fprintf(stderr, "lioncub_loop: pride_init: %s\n", pride_strerror(st));
        return 1;
    }
    int rank = pride_rank(ctx);
    /* each rank its own file, named by its process so that runs side by side differ */
    snprintf(ckpt, sizeof ckpt, "lioncub_loop.%ld.rank%d.ckpt", (long)getpid(), rank);

    /* one tensor per layer: l1's scale and selective sync are per tensor */
    const pride_tensor_t tensors[] = {{"weight", 0, OUT * IN}, {"bias", OUT * IN, OUT}};
    pride_optim_config_t cfg = PRIDE_OPTIM_CONFIG_INIT;
    cfg.algorithm = "lioncub";
    cfg.quant = argc > 1 ? argv[1] : "l1";
    cfg.momentum_sync = argc > 2 ? argv[2] : "every:10";
    cfg.lr = 0.01f;
    cfg.wd = 0.0f;
    st = pride_optim_create(ctx, &cfg, params, NPARAMS, tensors, 2, &opt);
    if (st == PRIDE_OK)
        st = loop_train(ctx, opt, params, 0, SAVE_AT, &first, &unused);
    if (st == PRIDE_OK)
        st = pride_optim_save(opt, ckpt); /* each rank its own file: momentum differs */
    if (st == PRIDE_OK)
        st = loop_train(ctx, opt, params, SAVE_AT, STEPS, &unused, &last);
    if (st != PRIDE_OK) {
        fprintf(stderr, "lioncub_loop: %s: %s\n", pride_strerror(st), pride_last_error(ctx));
        goto done;
    }
    pride_optim_stats_t stats = PRIDE_OPTIM_STATS_INIT;
    pride_optim_stats(opt, &stats);
    memcpy(final, params, sizeof final);

    uint64_t h = loop_hash(params), lo, hi;
    if (pride_allreduce(ctx, &h, &lo, 1, PRIDE_UINT64, PRIDE_MIN) != PRIDE_OK ||
        pride_allreduce(ctx, &h, &hi, 1, PRIDE_UINT64, PRIDE_MAX) != PRIDE_OK || lo != hi) {
        fprintf(stderr, "lioncub_loop: parameters differ between ranks\n");
        goto done;
    }
    if (!(last < 0.05f * first)) {
        fprintf(stderr, "lioncub_loop: loss went from %g to %g, want below 5 %%\n", first, last);
        goto done;
    }
    /* resume from the checkpoint: the same steps must give the same bits */
    st = pride_optim_load(opt, ckpt);
    if (st == PRIDE_OK)
        st = loop_train(ctx, opt, params, SAVE_AT, STEPS, &unused, &unused);
    if (st != PRIDE_OK || memcmp(params, final, sizeof final) != 0) {
        fprintf(stderr, "lioncub_loop: resumed run differs (%s: %s)\n", pride_strerror(st),
                pride_last_error(ctx));
        goto done;
    }
    printf("rank %d of %d: lioncub %s %s loss %.4f -> %.6f, %.2f bits/param/step, "
           "parameters identical, resume identical ok\n",
           rank, pride_nranks(ctx), cfg.quant, cfg.momentum_sync, first, last,
           (double)stats.bytes_sent * 8 / ((double)NPARAMS * (double)stats.steps));
    rc = 0;
done:
    remove(ckpt);
    if (opt)
        pride_optim_destroy(opt);
    pride_finalize(ctx);
    return rc;
}
