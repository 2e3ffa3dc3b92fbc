/*
 * pride-train: data-parallel training of an MLP on Fashion-MNIST with any optimizer of
 * the library, run as `pride-run -n 4 pride-train --optimizer lioncub --quant l1 ...`.
 *
 * The one idea: every rank starts from the same parameters (drawn from --seed), walks
 * the same shuffled order of the training set, and takes its own slice of each global
 * batch (--batch images per rank); the optimizer turns the ranks' different gradients
 * into one update, so the replicas never diverge and any rank can evaluate. The network
 * is 784 -> W (ReLU) x D -> 10 with softmax cross-entropy, the learning rate decays
 * from --lr to 0 along a cosine (the same on every rank). The forward pass and both
 * backward products are cache-blocked, register-tiled matrix products (train/gemm.c,
 * vector kernels chosen for the CPU at run time); every buffer a step uses is
 * allocated once, before the first step.
 *
 * Output: one line per epoch on rank 0's stdout, and with --csv FILE the columns
 * epoch,loss,test_acc,bytes_sent,comm_s,step_s (bytes and communication seconds of
 * this rank's optimizer in that epoch, step_s the mean wall time of a training step).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include <pride/pride.h>

#include "gemm.h"

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"
#define NPIX 784
#define NCLASS 10

struct options {
    const char *optimizer, *quant, *sync, *csv, *data;
    float lr, wd, beta1, beta2;
    int lr_set, wd_set;
    long epochs, max_steps, batch, width, depth;
    unsigned long long seed;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pride-run -n N pride-train [options]\n"
            "Train a 784 -> W (ReLU) x D -> 10 MLP on Fashion-MNIST, data-parallel over the\n"
            "ranks of the job (a single process trains alone).\n\n"
            "  --optimizer NAME    lion adamw global-lion global-adamw dlion-mavo dlion-avg\n"
            "                      lioncub (default lioncub)\n"
            "  --quant Q           lioncub: sign1 l1 l1-ternary (default sign1)\n"
            "  --momentum-sync S   lioncub: never every:K exp[:k] selective[:F] (default never)\n"
            "  --lr LR             peak learning rate, decayed along a cosine to 0 over the run\n"
            "                      (default 3e-3 for adamw, 1e-3 for Lion kinds)\n"
            "  --wd WD             decoupled weight decay (default 0.01 adamw, 0.1 Lion kinds)\n"
            "  --beta1 B1 --beta2 B2   (default: the optimizer's own)\n"
            "  --epochs E          passes over the 60000 training images (default 1)\n"
            "  --max-steps N       stop after N steps in all (default: no limit)\n"
            "  --batch B           images per rank per step (default 32)\n"
            "  --width W           hidden units per layer (default 256)\n"
            "  --depth D           hidden layers (default 2)\n"
            "  --seed S            initialization and shuffling seed (default 1)\n"
            "  --csv FILE          write epoch,loss,test_acc,bytes_sent,comm_s,step_s (rank 0)\n"
            "  --data DIR          the dataset directory (default " DEFAULT_DATA ",\n"
            "                      from the Debian package dataset-fashion-mnist)\n"
            "  --help              this text\n");
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pride-train: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static long parse_long(const char *flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "pride-train: %s needs a whole number in [%ld, %ld], not '%s'\n", flag,
                lo, hi, s);
        exit(2);
    }
    return v;
}

static float parse_float(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        fprintf(stderr, "pride-train: %s needs a number, not '%s'\n", flag, s);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){.optimizer = "lioncub", .data = DEFAULT_DATA, .beta1 = -1,
                          .beta2 = -1, .epochs = 1, .batch = 32, .width = 256, .depth = 2,
                          .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc || strncmp(f, "--", 2)) {
            fprintf(stderr, "pride-train: %s: unknown option or missing value (see --help)\n", f);
            exit(2);
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--optimizer"))
            o->optimizer = v;
        else if (!strcmp(f, "--quant"))
            o->quant = v;
        else if (!strcmp(f, "--momentum-sync"))
            o->sync = v;
        else if (!strcmp(f, "--lr"))
            o->lr = parse_float(f, v), o->lr_set = 1;
        else if (!strcmp(f, "--wd"))
            o->wd = parse_float(f, v), o->wd_set = 1;
        else if (!strcmp(f, "--beta1"))
            o->beta1 = parse_float(f, v);
        else if (!strcmp(f, "--beta2"))
            o->beta2 = parse_float(f, v);
        else if (!strcmp(f, "--epochs"))
            o->epochs = parse_long(f, v, 1, 100000);
        else if (!strcmp(f, "--max-steps"))
            o->max_steps = parse_long(f, v, 1, 1000000000L);
        else if (!strcmp(f, "--batch"))
            o->batch = parse_long(f, v, 1, 60000);
        else if (!strcmp(f, "--width"))
            o->width = parse_long(f, v, 1, 1 << 16);
        else if (!strcmp(f, "--depth"))
            o->depth = parse_long(f, v, 0, 64);
        else if (!strcmp(f, "--seed"))
            o->seed = (unsigned long long)parse_long(f, v, 0, INT32_MAX);
        else if (!strcmp(f, "--csv"))
            o->csv = v;
        else if (!strcmp(f, "--data"))
            o->data = v;
        else {
            fprintf(stderr, "pride-train: unknown option %s (see --help)\n", f);
            exit(2);
        }
    }
    int adam = strstr(o->optimizer, "adamw") != NULL;
    if (!o->lr_set)
        o->lr = adam ? 3e-3f : 1e-3f;
    if (!o->wd_set)
        o->wd = adam ? 0.01f : 0.1f;
}

/* ---- data: IDX files (big-endian header), gzip-compressed ---- */

struct dataset {
    uint8_t *images; /* n x 784 */
    uint8_t *labels;
    size_t n;
};

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Read one IDX file: magic 0x801 (labels) or 0x803 (28x28 images); returns n. */
static size_t idx_read(const char *dir, const char *name, int images, uint8_t **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile f = gzopen(path, "rb");
    if (!f)
        die("cannot open %s: %s (install the Debian package dataset-fashion-mnist, or pass "
            "--data DIR)", path, errno ? strerror(errno) : "not readable");
    unsigned char h[16];
    int hl = images ? 16 : 8;
    if (gzread(f, h, (unsigned)hl) != hl)
        die("%s is too short for an IDX header", path);
    uint32_t magic = be32(h), n = be32(h + 4);
    if (magic != (images ? 0x803u : 0x801u) || n == 0 || n > 1000000 ||
        (images && (be32(h + 8) != 28 || be32(h + 12) != 28)))
        die("%s is not an IDX %s file of 28x28 Fashion-MNIST data", path,
            images ? "image" : "label");
    size_t bytes = (size_t)n * (images ? NPIX : 1);
    uint8_t *buf = malloc(bytes);
    if (!buf)
        die("out of memory reading %s", path);
    size_t got = 0;
    while (got < bytes) {
        unsigned chunk = bytes - got > (1u << 30) ? (1u << 30) : (unsigned)(bytes - got);
        int r = gzread(f, buf + got, chunk);
        if (r <= 0)
            die("%s is truncated or damaged (%zu of %zu bytes)", path, got, bytes);
        got += (size_t)r;
    }
    gzclose(f);
    *out = buf;
    return n;
}

static void dataset_load(const char *dir, const char *split, struct dataset *d)
{
    char img[64], lab[64];
    snprintf(img, sizeof img, "%s-images-idx3-ubyte.gz", split);
    snprintf(lab, sizeof lab, "%s-labels-idx1-ubyte.gz", split);
    d->n = idx_read(dir, img, 1, &d->images);
    uint8_t *labels;
    size_t nl = idx_read(dir, lab, 0, &labels);
    if (nl != d->n)
        die("%s/%s has %zu labels for %zu images", dir, lab, nl, d->n);
    for (size_t i = 0; i < nl; i++)
        if (labels[i] >= NCLASS)
            die("%s/%s: label %u is not a class 0..9", dir, lab, labels[i]);
    d->labels = labels;
}

/* ---- the network ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (double)(splitmix(s) >> 11) * 0x1p-53; }

struct mlp {
    int nl;              /* layers (depth + 1) */
    size_t dim[66];      /* dim[l] inputs of layer l, dim[nl] = 10 */
    size_t woff[65], boff[65];
    size_t nparams;
    float *p, *grad;
    float **act;         /* act[l]: rows x dim[l] (act[0] the input); act[nl] the logits */
    float **dz;          /* dz[l]: rows x dim[l+1], gradient of layer l's output */
    struct gemm *gemm;   /* the matrix product with its packing buffers */
    size_t rows;         /* capacity in images */
};

static void *xcalloc(size_t n, size_t s)
{
    void *p = calloc(n, s);
    if (!p)
        die("out of memory (%zu x %zu bytes)", n, s);
    return p;
}

static void mlp_init(struct mlp *m, long width, long depth, size_t rows, uint64_t seed)
{
    m->nl = (int)depth + 1;
    m->dim[0] = NPIX;
    for (int l = 1; l < m->nl; l++)
        m->dim[l] = (size_t)width;
    m->dim[m->nl] = NCLASS;
    size_t n = 0;
    for (int l = 0; l < m->nl; l++) {
        m->woff[l] = n;
        n += m->dim[l] * m->dim[l + 1];
        m->boff[l] = n;
        n += m->dim[l + 1];
    }
    m->nparams = n;
    m->p = xcalloc(n, sizeof *m->p);
    m->grad = xcalloc(n, sizeof *m->grad);
    m->rows = rows;
    m->act = xcalloc((size_t)m->nl + 1, sizeof *m->act);
    m->dz = xcalloc((size_t)m->nl, sizeof *m->dz);
    for (int l = 0; l <= m->nl; l++)
        m->act[l] = xcalloc(rows * m->dim[l], sizeof(float));
    for (int l = 0; l < m->nl; l++)
        m->dz[l] = xcalloc(rows * m->dim[l + 1], sizeof(float));
    m->gemm = gemm_create(NULL);
    if (!m->gemm)
        die("out of memory for the matrix product's buffers");
    /* He-uniform weights (bound sqrt(6 / fan_in)), zero biases: the same on every rank */
    uint64_t s = seed * UINT64_C(0x2545F4914F6CDD1D) + 1;
    for (int l = 0; l < m->nl; l++) {
        double bound = sqrt(6.0 / (double)m->dim[l]);
        for (size_t i = 0; i < m->dim[l] * m->dim[l + 1]; i++)
            m->p[m->woff[l] + i] = (float)((2 * uniform(&s) - 1) * bound);
    }
}

static void mlp_free(struct mlp *m)
{
    for (int l = 0; l <= m->nl; l++)
        free(m->act[l]);
    for (int l = 0; l < m->nl; l++)
        free(m->dz[l]);
    free(m->act);
    free(m->dz);
    gemm_destroy(m->gemm);
    free(m->p);
    free(m->grad);
}

/* Forward rows images (already in act[0]); returns the summed loss and counts correct
   predictions; with labels and train set, leaves dz[nl-1] = (softmax - onehot) / rows. */
static double mlp_forward(struct mlp *m, size_t rows, const uint8_t *labels, int train,
                          size_t *correct)
{
    for (int l = 0; l < m->nl; l++) {
        size_t in = m->dim[l], out = m->dim[l + 1];
        float *z = m->act[l + 1];
        const float *b = m->p + m->boff[l];
        /* z = act[l] W + b, then ReLU on hidden layers */
        gemm_run(m->gemm, rows, out, in, m->act[l], in, 1, m->p + m->woff[l], out, 1, z, out, 0);
        int relu = l + 1 < m->nl;
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < out; j++) {
                float v = z[r * out + j] + b[j];
                z[r * out + j] = relu && !(v > 0) ? 0 : v;
            }
    }
    double loss = 0;
    const float *logits = m->act[m->nl];
    float *d = m->dz[m->nl - 1];
    for (size_t r = 0; r < rows; r++) {
        const float *z = logits + r * NCLASS;
        size_t best = 0;
        for (size_t c = 1; c < NCLASS; c++)
            best = z[c] > z[best] ? c : best;
        *correct += best == labels[r];
        double sum = 0;
        for (size_t c = 0; c < NCLASS; c++)
            sum += exp((double)(z[c] - z[best]));
        loss += log(sum) - (double)(z[labels[r]] - z[best]);
        if (train)
            for (size_t c = 0; c < NCLASS; c++)
                d[r * NCLASS + c] = (float)((exp((double)(z[c] - z[best])) / sum -
                                             (c == labels[r])) / (double)rows);
    }
    return loss;
}

/* Backward from dz[nl-1] into m->grad (every element of it written). */
static void mlp_backward(struct mlp *m, size_t rows)
{
    for (int l = m->nl - 1; l >= 0; l--) {
        size_t in = m->dim[l], out = m->dim[l + 1];
        const float *dz = m->dz[l];
        /* dW[in x out] = act[l]^T dz, db = column sums of dz */
        gemm_run(m->gemm, in, out, rows, m->act[l], 1, in, dz, out, 1, m->grad + m->woff[l], out,
                 0);
        float *db = m->grad + m->boff[l];
        memset(db, 0, out * sizeof *db);
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < out; j++)
                db[j] += dz[r * out + j];
        if (l == 0)
            break;
        /* dz[l-1] = (dz W^T) masked by ReLU; W^T is read through strides, not copied */
        float *prev = m->dz[l - 1];
        gemm_run(m->gemm, rows, in, out, dz, out, 1, m->p + m->woff[l], 1, out, prev, in, 0);
        const float *a = m->act[l];
        for (size_t i = 0; i < rows * in; i++)
            prev[i] = a[i] > 0 ? prev[i] : 0;
    }
}

/* Pixels scaled to [0, 1]. */
static void load_rows(struct mlp *m, const struct dataset *d, const size_t *idx, size_t rows,
                      uint8_t *labels)
{
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *px = d->images + idx[r] * NPIX;
        float *x = m->act[0] + r * NPIX;
        for (size_t i = 0; i < NPIX; i++)
            x[i] = (float)px[i] * (1.0f / 255.0f);
        labels[r] = d->labels[idx[r]];
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define CHECK(ctx, expr)                                                                  \
    do {                                                                                  \
        int st_ = (expr);                                                                 \
        if (st_ != PRIDE_OK)                                                              \
            die("%s: %s (%s)", #expr, pride_strerror(st_), (ctx) ? pride_last_error(ctx) : ""); \
    } while (0)

/* Test accuracy and mean loss, each rank evaluating a slice and the counts summed. */
static void evaluate(pride_context_t *ctx, struct mlp *m, const struct dataset *test,
                     double *acc, double *loss)
{
    int rank = pride_rank(ctx), P = pride_nranks(ctx);
    size_t lo = test->n * (size_t)rank / (size_t)P, hi = test->n * (size_t)(rank + 1) / (size_t)P;
    enum { CHUNK = 256 }; /* m->rows >= 256 */
    size_t idx[CHUNK];
    uint8_t labels[CHUNK];
    size_t correct = 0;
    double sums[2] = {0, 0};
    for (size_t i = lo; i < hi; i += CHUNK) {
        size_t rows = hi - i < CHUNK ? hi - i : CHUNK;
        for (size_t r = 0; r < rows; r++)
            idx[r] = i + r;
        load_rows(m, test, idx, rows, labels);
        sums[0] += mlp_forward(m, rows, labels, 0, &correct);
    }
    sums[1] = (double)correct;
    CHECK(ctx, pride_allreduce(ctx, sums, sums, 2, PRIDE_FLOAT64, PRIDE_SUM));
    *loss = sums[0] / (double)test->n;
    *acc = sums[1] / (double)test->n;
}

struct epoch_log {
    double loss_sum;
    size_t loss_n, steps;
    double step_s;
    pride_optim_stats_t at_start;
};

/* One CSV row and one stdout line (rank 0), for `epoch` possibly fractional. */
static void report(pride_context_t *ctx, pride_optim_t *opt, struct mlp *m,
                   const struct dataset *test, FILE *csv, double epoch, struct epoch_log *e)
{
    pride_optim_stats_t s = PRIDE_OPTIM_STATS_INIT;
    CHECK(ctx, pride_optim_stats(opt, &s));
    double tl[2] = {e->loss_sum, (double)e->loss_n};
    CHECK(ctx, pride_allreduce(ctx, tl, tl, 2, PRIDE_FLOAT64, PRIDE_SUM));
    double acc, test_loss;
    evaluate(ctx, m, test, &acc, &test_loss);
    unsigned long long bytes = s.bytes_sent - e->at_start.bytes_sent;
    double comm = s.comm_s - e->at_start.comm_s;
    double step_s = e->steps ? e->step_s / (double)e->steps : 0;
    double bits = e->steps ? (double)bytes * 8 / ((double)m->nparams * (double)e->steps) : 0;
    if (pride_rank(ctx) == 0) {
        printf("epoch %g: train loss %.4f, test loss %.4f, test accuracy %.4f, sent %.2f MB "
               "(%.2f bits/param/step), comm %.2f s, %.2f ms/step\n",
               epoch, tl[0] / tl[1], test_loss, acc, (double)bytes / 1e6, bits, comm,
               step_s * 1e3);
        fflush(stdout);
        if (csv) {
            fprintf(csv, "%g,%.6f,%.6f,%llu,%.6f,%.6f\n", epoch, tl[0] / tl[1], acc, bytes, comm,
                    step_s);
            fflush(csv);
        }
    }
    *e = (struct epoch_log){.at_start = s};
}

int main(int argc, char **argv)
{
    struct options o;
    parse_args(argc, argv, &o);
    struct dataset train, test;
    dataset_load(o.data, "train", &train);
    dataset_load(o.data, "t10k", &test);

    pride_context_t *ctx = NULL;
    CHECK(ctx, pride_init(NULL, &ctx));
    int rank = pride_rank(ctx), P = pride_nranks(ctx);
    size_t B = (size_t)o.batch, global = B * (size_t)P;
    if (global > train.n)
        die("--batch %zu on %d ranks needs %zu images per step; the training set has %zu", B, P,
            global, train.n);
    size_t per_epoch = train.n / global;

    struct mlp m;
    mlp_init(&m, o.width, o.depth, B > 256 ? B : 256, o.seed);
    pride_tensor_t *tensors = xcalloc(2 * (size_t)m.nl, sizeof *tensors);
    char (*names)[32] = xcalloc(2 * (size_t)m.nl, sizeof *names);
    for (int l = 0; l < m.nl; l++) {
        snprintf(names[2 * l], 32, "fc%d.weight", l);
        snprintf(names[2 * l + 1], 32, "fc%d.bias", l);
        tensors[2 * l] = (pride_tensor_t){names[2 * l], m.woff[l], m.dim[l] * m.dim[l + 1]};
        tensors[2 * l + 1] = (pride_tensor_t){names[2 * l + 1], m.boff[l], m.dim[l + 1]};
    }
    pride_optim_config_t cfg = PRIDE_OPTIM_CONFIG_INIT;
    cfg.algorithm = o.optimizer;
    cfg.quant = o.quant;
    cfg.momentum_sync = o.sync;
    cfg.lr = o.lr;
    cfg.wd = o.wd;
    cfg.beta1 = o.beta1;
    cfg.beta2 = o.beta2;
    cfg.seed = o.seed;
    pride_optim_t *opt = NULL;
    CHECK(ctx, pride_optim_create(ctx, &cfg, m.p, m.nparams, tensors, 2 * (size_t)m.nl, &opt));

    FILE *csv = NULL;
    if (rank == 0 && o.csv) {
        csv = fopen(o.csv, "w");
        if (!csv)
            die("cannot write %s: %s", o.csv, strerror(errno));
        fprintf(csv, "epoch,loss,test_acc,bytes_sent,comm_s,step_s\n");
    }
    if (rank == 0)
        printf("pride-train: %s%s%s%s%s on %d rank%s, %zu parameters, batch %zu x %d, lr %g, "
               "wd %g, %zu steps per epoch\n",
               o.optimizer, o.quant ? " quant " : "", o.quant ? o.quant : "",
               o.sync ? " momentum-sync " : "", o.sync ? o.sync : "", P, P == 1 ? "" : "s",
               m.nparams, B, P, (double)o.lr, (double)o.wd, per_epoch);

    size_t *perm = xcalloc(train.n, sizeof *perm);
    size_t *idx = xcalloc(B, sizeof *idx);
    uint8_t *labels = xcalloc(m.rows, 1);
    struct epoch_log e = {0};
    e.at_start = (pride_optim_stats_t)PRIDE_OPTIM_STATS_INIT;
    long long total = 0, planned = (long long)per_epoch * o.epochs;
    if (o.max_steps && o.max_steps < planned)
        planned = o.max_steps;
    for (long ep = 0; ep < o.epochs; ep++) {
        /* the same permutation on every rank: Fisher-Yates from (seed, epoch) */
        uint64_t s = o.seed * UINT64_C(0x9E3779B97F4A7C15) + (uint64_t)ep + 1;
        for (size_t i = 0; i < train.n; i++)
            perm[i] = i;
        for (size_t i = train.n - 1; i > 0; i--) {
            size_t j = (size_t)(splitmix(&s) % (i + 1)), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        size_t step = 0;
        for (; step < per_epoch && (o.max_steps == 0 || total < o.max_steps); step++, total++) {
            double t0 = now_s();
            double lr = 0.5 * (double)o.lr * (1 + cos(M_PI * (double)total / (double)planned));
            CHECK(ctx, pride_optim_set_lr(opt, (float)lr));
            for (size_t r = 0; r < B; r++)
                idx[r] = perm[step * global + (size_t)rank * B + r];
            load_rows(&m, &train, idx, B, labels);
            size_t correct = 0;
            e.loss_sum += mlp_forward(&m, B, labels, 1, &correct);
            e.loss_n += B;
            mlp_backward(&m, B);
            CHECK(ctx, pride_optim_step(opt, m.grad));
            e.step_s += now_s() - t0;
            e.steps++;
        }
        if (step < per_epoch) {
            if (step > 0)
                report(ctx, opt, &m, &test, csv, (double)ep + (double)step / (double)per_epoch, &e);
            break;
        }
        report(ctx, opt, &m, &test, csv, (double)(ep + 1), &e);
    }
    pride_optim_stats_t s = PRIDE_OPTIM_STATS_INIT;
    CHECK(ctx, pride_optim_stats(opt, &s));
    if (rank == 0 && s.steps)
        printf("pride-train: %llu steps, %.3f bits/param/step sent per rank, %.2f s communicating, "
               "%.2f s in the optimizer's computation, %llu tensor momentum syncs\n",
               s.steps, (double)s.bytes_sent * 8 / ((double)m.nparams * (double)s.steps),
               s.comm_s, s.compute_s, s.momentum_syncs);
    if (csv && fclose(csv))
        die("writing %s failed: %s", o.csv, strerror(errno));
    pride_optim_destroy(opt);
    pride_finalize(ctx);
    mlp_free(&m);
    free(perm);
    free(idx);
    free(labels);
    free(tensors);
    free(names);
    free(train.images);
    free(train.labels);
    free(test.images);
    free(test.labels);
    return 0;
}
