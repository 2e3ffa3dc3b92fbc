/*
 * Checks on received frame headers, and the words used to describe a collective's
 * arguments in error messages. This is the only code that interprets a header from
 * the wire; everything it accepts is within the ranges the receivers rely on.
 */
#include "frame.h"

#include <stdio.h>

#include "pride/pride.h"

static const char *const coll_names[PRIDE_COLL_KIND_MAX] = {
    [PRIDE_COLL_P2P] = "point-to-point",
    [PRIDE_COLL_ALLREDUCE] = "allreduce",
    [PRIDE_COLL_REDUCE_SCATTER] = "reduce_scatter",
    [PRIDE_COLL_ALLGATHER] = "allgather",
    [PRIDE_COLL_BROADCAST] = "broadcast",
    [PRIDE_COLL_REDUCE] = "reduce",
    [PRIDE_COLL_ALLTOALL] = "alltoall",
    [PRIDE_COLL_BARRIER] = "barrier",
    [PRIDE_COLL_VOTE] = "vote",
    [PRIDE_COLL_VOTE_COUNT] = "vote_count",
    [PRIDE_COLL_VOTE_ALLGATHER] = "vote_allgather",
};

static const char *const dtype_names[] = {"int8",    "uint8",    "int32",   "uint32",
                                          "int64",   "uint64",   "float16", "bfloat16",
                                          "float32", "float64"};
static const char *const op_names[] = {"sum", "prod", "min", "max", "avg"};
static const char *const tie_names[] = {"tie=negative", "tie=positive", "tie=alternate"};

const char *pride_coll_name(int coll)
{
    if (coll < 0 || coll >= PRIDE_COLL_KIND_MAX)
        return "unknown collective";
    return coll_names[coll];
}

int pride_frame_check(const struct pride_frame_hdr *h, char *why, size_t whylen)
{
    if (h->magic != PRIDE_FRAME_MAGIC) {
        snprintf(why, whylen, "bad magic 0x%08x (not a pride frame)", (unsigned)h->magic);
        return PRIDE_ERR_PEER;
    }
    if (h->version != PRIDE_PROTO_VERSION) {
        snprintf(why, whylen, "protocol version %u, this build speaks %u", (unsigned)h->version,
                 PRIDE_PROTO_VERSION);
        return PRIDE_ERR_PEER;
    }
    if (h->kind != PRIDE_FRAME_DATA && h->kind != PRIDE_FRAME_ERROR) {
        snprintf(why, whylen, "unknown frame kind %u", (unsigned)h->kind);
        return PRIDE_ERR_PEER;
    }
    if ((h->flags & ~PRIDE_FRAME_F_CRC32C) ||
        ((h->flags & PRIDE_FRAME_F_CRC32C) && h->kind != PRIDE_FRAME_DATA)) {
        snprintf(why, whylen, "unknown flags 0x%x on a frame of kind %u", (unsigned)h->flags,
                 (unsigned)h->kind);
        return PRIDE_ERR_PEER;
    }
    if (h->len > PRIDE_FRAME_MAX_LEN ||
        (h->kind == PRIDE_FRAME_ERROR && h->len > PRIDE_FRAME_MAX_REASON)) {
        snprintf(why, whylen, "frame announces %llu payload bytes, more than allowed",
                 (unsigned long long)h->len);
        return PRIDE_ERR_PEER;
    }
    if (h->meta.coll >= PRIDE_COLL_KIND_MAX) {
        snprintf(why, whylen, "unknown collective kind %u", (unsigned)h->meta.coll);
        return PRIDE_ERR_PEER;
    }
    if (h->kind == PRIDE_FRAME_ERROR && (h->status >= 0 || h->status < PRIDE_ERR_IO)) {
        snprintf(why, whylen, "error frame with status %d", (int)h->status);
        return PRIDE_ERR_PEER;
    }
    return PRIDE_OK;
}

void pride_meta_describe(const struct pride_meta *m, char *out, size_t outlen)
{
    const char *coll = pride_coll_name(m->coll);
    int n;
    if (m->coll == PRIDE_COLL_BARRIER) {
        n = snprintf(out, outlen, "barrier");
    } else if (m->coll >= PRIDE_COLL_VOTE && m->coll <= PRIDE_COLL_VOTE_ALLGATHER) {
        n = snprintf(out, outlen, "%s(nbits=%llu, %s)", coll, (unsigned long long)m->count,
                     m->op < 3 ? tie_names[m->op] : "tie=?");
    } else {
        const char *dt = m->dtype < 10 ? dtype_names[m->dtype] : "dtype?";
        const char *op = m->op < 5 ? op_names[m->op] : "op?";
        n = snprintf(out, outlen, "%s(count=%llu, %s, %s", coll, (unsigned long long)m->count, dt,
                     op);
        if (n >= 0 && (size_t)n < outlen && m->root >= 0)
            n += snprintf(out + n, outlen - (size_t)n, ", root=%d", (int)m->root);
        if (n >= 0 && (size_t)n < outlen && m->algo)
            n += snprintf(out + n, outlen - (size_t)n, ", algo=%u", (unsigned)m->algo);
        if (n >= 0 && (size_t)n < outlen)
            snprintf(out + n, outlen - (size_t)n, ")");
    }
    (void)n;
}

int pride_meta_compare(const struct pride_meta *mine, const struct pride_meta *theirs, char *why,
                       size_t whylen)
{
    if (mine->coll == theirs->coll && mine->dtype == theirs->dtype && mine->op == theirs->op &&
        mine->algo == theirs->algo && mine->root == theirs->root && mine->count == theirs->count)
        return PRIDE_OK;
    char a[160], b[160];
    pride_meta_describe(mine, a, sizeof a);
    pride_meta_describe(theirs, b, sizeof b);
    snprintf(why, whylen, "this rank called %s but the peer called %s", a, b);
    return PRIDE_ERR_MISMATCH;
}
