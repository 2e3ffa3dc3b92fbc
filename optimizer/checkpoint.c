/*
 * Optimizer checkpoints: one file per rank holding the parameters, the momentum (and
 * AdamW's second moment), the step counter and the current learning rate.
 *
 * The one idea: a checkpoint is trusted only whole. The header names the format
 * version, the configuration, the rank, the rank count and a hash of the tensor
 * layout, and carries its own CRC32; the arrays carry another. Loading reads and checks
 * everything into scratch memory before it changes a single byte of the optimizer.
 * Saving writes a temporary file, fsyncs it and renames it over the target, so a crash
 * leaves the old checkpoint or the new one, never half of one. Numbers are stored in
 * the machine's byte order; a marker in the header refuses files from the other order.
 *
 * Layout: header (176 bytes, header CRC last) | x[n] m[n] [v[n]] as float32 | CRC32 of
 * the arrays.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctx.h" /* pride_error only */
#include "optim.h"

#define CKPT_MAGIC "PRIDEOPT"
#define CKPT_VERSION 1u
#define CKPT_BYTE_ORDER 0x01020304u

struct ckpt_header {
    char magic[8];
    uint32_t version;
    uint32_t byte_order;
    char algorithm[16];
    char quant[16];
    char sync[48];
    float lr, wd, beta1, beta2, eps;
    uint32_t tie;
    uint64_t seed;
    uint32_t rank, nranks;
    uint64_t nparams, ntensors, layout_hash, step;
    uint32_t narrays;
    uint32_t header_crc; /* CRC32 of every byte before it */
};
_Static_assert(sizeof(struct ckpt_header) == 176, "checkpoint header layout");

/* CRC32 (the zlib / PNG polynomial, reflected 0xEDB88320), table-driven. */
struct crc {
    uint32_t table[256];
    uint32_t value;
};

static void crc_init(struct crc *c)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i;
        for (int b = 0; b < 8; b++)
            r = (r >> 1) ^ (UINT32_C(0xEDB88320) & (0u - (r & 1)));
        c->table[i] = r;
    }
    c->value = 0xFFFFFFFFu;
}

static void crc_add(struct crc *c, const void *p, size_t len)
{
    const unsigned char *b = p;
    uint32_t v = c->value;
    for (size_t i = 0; i < len; i++)
        v = c->table[(v ^ b[i]) & 0xFF] ^ (v >> 8);
    c->value = v;
}

static uint32_t crc_done(const struct crc *c) { return c->value ^ 0xFFFFFFFFu; }

static int narrays(const struct pride_optim *o) { return o->v ? 3 : 2; }

static float *array_of(const struct pride_optim *o, int a)
{
    return a == 0 ? o->x : a == 1 ? o->m : o->v;
}

static void header_fill(const struct pride_optim *o, struct ckpt_header *h, struct crc *c)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, CKPT_MAGIC, 8);
    h->version = CKPT_VERSION;
    h->byte_order = CKPT_BYTE_ORDER;
    snprintf(h->algorithm, sizeof h->algorithm, "%s", optim_algo_name(o->algo));
    snprintf(h->quant, sizeof h->quant, "%s", optim_quant_name(o->quant));
    snprintf(h->sync, sizeof h->sync, "%s", o->sync_spec);
    h->lr = o->lr;
    h->wd = o->wd;
    h->beta1 = o->beta1;
    h->beta2 = o->beta2;
    h->eps = o->eps;
    h->tie = (uint32_t)o->tie;
    h->seed = o->seed;
    h->rank = (uint32_t)o->rank;
    h->nranks = (uint32_t)o->nranks;
    h->nparams = o->n;
    h->ntensors = o->nt;
    h->layout_hash = optim_layout_hash(o);
    h->step = o->step;
    h->narrays = (uint32_t)narrays(o);
    crc_init(c);
    crc_add(c, h, offsetof(struct ckpt_header, header_crc));
    h->header_crc = crc_done(c);
}

static int write_all(int fd, const void *p, size_t len)
{
    const char *b = p;
    while (len > 0) {
        ssize_t w = write(fd, b, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Read exactly len bytes; returns the count read (short at end of file) or -1. */
static ssize_t read_all(int fd, void *p, size_t len)
{
    char *b = p;
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, b + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* fsync the directory holding path, so the rename itself is durable. */
static int sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int pride_optim_save(const pride_optim_t *o, const char *path)
{
    if (!o)
        return PRIDE_ERR_INVALID;
    if (!path || !*path)
        return pride_error(o->ctx, PRIDE_ERR_INVALID, "pride_optim_save: no path given");
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp)
        return pride_error(o->ctx, PRIDE_ERR_NOMEM, "pride_optim_save: out of memory");
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    int st = PRIDE_OK;
    const char *what = "open";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto fail;
    struct ckpt_header h;
    struct crc c;
    header_fill(o, &h, &c);
    what = "write";
    if (write_all(fd, &h, sizeof h))
        goto fail_close;
    crc_init(&c);
    for (int a = 0; a < narrays(o); a++) {
        crc_add(&c, array_of(o, a), o->n * sizeof(float));
        if (write_all(fd, array_of(o, a), o->n * sizeof(float)))
            goto fail_close;
    }
    uint32_t crc = crc_done(&c);
    if (write_all(fd, &crc, sizeof crc))
        goto fail_close;
    what = "fsync";
    if (fsync(fd))
        goto fail_close;
    what = "close";
    if (close(fd))
        goto fail;
    what = "rename";
    if (rename(tmp, path))
        goto fail;
    what = "fsync the directory of";
    if (sync_dir(path))
        goto fail_kept;
    free(tmp);
    return PRIDE_OK;
fail_close:
    close(fd);
fail:
    st = pride_error(o->ctx, PRIDE_ERR_IO, "pride_optim_save: could not %s %s: %s", what, tmp,
                     strerror(errno));
    unlink(tmp);
    free(tmp);
    return st;
fail_kept:
    st = pride_error(o->ctx, PRIDE_ERR_IO, "pride_optim_save: wrote %s but could not %s it: %s",
                     path, what, strerror(errno));
    free(tmp);
    return st;
}

/* Compare the header with this optimizer; a sentence in why for the first difference. */
static int header_check(const struct pride_optim *o, const struct ckpt_header *h, char *why,
                        size_t wl)
{
    struct ckpt_header mine;
    struct crc c;
    header_fill(o, &mine, &c);
    if (strncmp(h->algorithm, mine.algorithm, sizeof h->algorithm) ||
        strncmp(h->quant, mine.quant, sizeof h->quant) ||
        strncmp(h->sync, mine.sync, sizeof h->sync)) {
        snprintf(why, wl, "it was written by %.16s (quant %.16s, momentum_sync %.48s); this "
                          "optimizer is %s (quant %s, momentum_sync %s)", h->algorithm, h->quant,
                 h->sync, mine.algorithm, mine.quant, mine.sync);
        return PRIDE_ERR_INVALID;
    }
    if (memcmp(&h->wd, &mine.wd, 4 * sizeof(float)) || h->tie != mine.tie || h->seed != mine.seed) {
        snprintf(why, wl, "it was written with wd %g beta1 %g beta2 %g eps %g tie %u seed %llu; "
                          "this optimizer has wd %g beta1 %g beta2 %g eps %g tie %u seed %llu",
                 (double)h->wd, (double)h->beta1, (double)h->beta2, (double)h->eps, h->tie,
                 (unsigned long long)h->seed, (double)mine.wd, (double)mine.beta1,
                 (double)mine.beta2, (double)mine.eps, mine.tie, (unsigned long long)mine.seed);
        return PRIDE_ERR_INVALID;
    }
    if (h->nranks != mine.nranks || h->rank != mine.rank) {
        snprintf(why, wl, "it is rank %u's of %u ranks; this is rank %u of %u (each rank loads "
                          "the file it saved)", h->rank, h->nranks, mine.rank, mine.nranks);
        return PRIDE_ERR_INVALID;
    }
    if (h->nparams != mine.nparams || h->ntensors != mine.ntensors ||
        h->layout_hash != mine.layout_hash || h->narrays != mine.narrays) {
        snprintf(why, wl, "it holds %llu parameters in %llu tensors with another layout; this "
                          "optimizer has %llu in %llu", (unsigned long long)h->nparams,
                 (unsigned long long)h->ntensors, (unsigned long long)mine.nparams,
                 (unsigned long long)mine.ntensors);
        return PRIDE_ERR_INVALID;
    }
    return PRIDE_OK;
}

int pride_optim_load(pride_optim_t *o, const char *path)
{
    if (!o)
        return PRIDE_ERR_INVALID;
    if (!path || !*path)
        return pride_error(o->ctx, PRIDE_ERR_INVALID, "pride_optim_load: no path given");
    char why[768] = "";
    int st = PRIDE_ERR_IO;
    float *scratch = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, sizeof why, "cannot open it: %s", strerror(errno));
        goto out;
    }
    struct stat sb;
    if (fstat(fd, &sb)) {
        snprintf(why, sizeof why, "cannot stat it: %s", strerror(errno));
        goto out;
    }
    struct ckpt_header h;
    ssize_t got = read_all(fd, &h, sizeof h);
    if (got < 0) {
        snprintf(why, sizeof why, "cannot read it: %s", strerror(errno));
        goto out;
    }
    if ((size_t)got < sizeof h) {
        snprintf(why, sizeof why, "it is truncated: %zd bytes, shorter than the %zu-byte header",
                 got, sizeof h);
        goto out;
    }
    if (memcmp(h.magic, CKPT_MAGIC, 8)) {
        snprintf(why, sizeof why, "it is not a pride optimizer checkpoint (bad magic)");
        goto out;
    }
    if (h.byte_order != CKPT_BYTE_ORDER || h.version != CKPT_VERSION) {
        snprintf(why, sizeof why, "it has format version %u (or the other byte order); this "
                                  "build reads version %u", h.version, CKPT_VERSION);
        goto out;
    }
    struct crc c;
    crc_init(&c);
    crc_add(&c, &h, offsetof(struct ckpt_header, header_crc));
    if (crc_done(&c) != h.header_crc) {
        snprintf(why, sizeof why, "its header is damaged (CRC32 mismatch)");
        goto out;
    }
    st = header_check(o, &h, why, sizeof why);
    if (st != PRIDE_OK)
        goto out;
    st = PRIDE_ERR_IO;
    size_t bytes = (size_t)narrays(o) * o->n * sizeof(float);
    unsigned long long want = sizeof h + bytes + sizeof(uint32_t);
    if ((unsigned long long)sb.st_size != want) {
        snprintf(why, sizeof why, "it is %s: %lld bytes where %llu were written",
                 (unsigned long long)sb.st_size < want ? "truncated" : "too long",
                 (long long)sb.st_size, want);
        goto out;
    }
    scratch = malloc(bytes + sizeof(uint32_t));
    if (!scratch) {
        st = PRIDE_ERR_NOMEM;
        snprintf(why, sizeof why, "out of memory for %zu bytes of state", bytes);
        goto out;
    }
    got = read_all(fd, scratch, bytes + sizeof(uint32_t));
    if (got < 0 || (size_t)got != bytes + sizeof(uint32_t)) {
        snprintf(why, sizeof why, "it could not be read to the end (%s)",
                 got < 0 ? strerror(errno) : "it shrank while being read");
        goto out;
    }
    uint32_t crc;
    memcpy(&crc, (char *)scratch + bytes, sizeof crc);
    crc_init(&c);
    crc_add(&c, scratch, bytes);
    if (crc_done(&c) != crc) {
        snprintf(why, sizeof why, "its data is damaged (CRC32 mismatch)");
        goto out;
    }
    for (int a = 0; a < narrays(o); a++)
        memcpy(array_of(o, a), scratch + (size_t)a * o->n, o->n * sizeof(float));
    o->step = h.step;
    o->stats.steps = h.step;
    o->lr = h.lr;
    lioncub_schedule_seek(o, o->step);
    st = PRIDE_OK;
out:
    if (fd >= 0)
        close(fd);
    free(scratch);
    if (st != PRIDE_OK)
        pride_error(o->ctx, st, "pride_optim_load: refused %s: %s", path, why);
    return st;
}
