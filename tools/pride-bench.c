/*
 * pride-bench: the collective benchmark, with the columns of nccl-tests.
 *
 *   size count type redop root time algbw busbw #wrong
 *
 * One idea: every rank times the same loop of one collective (warm-up iterations,
 * a barrier, then -n timed iterations); the time shown is the largest per-rank mean,
 * algbw = size / time (GB = 1e9 bytes), and busbw scales algbw by the fraction of
 * the data each rank must move in the best algorithm (2(P-1)/P for allreduce,
 * (P-1)/P for reduce-scatter, allgather and alltoall, 1 for broadcast and reduce),
 * so busbw reads as "link speed achieved" and compares across rank counts.
 *
 * "size" is the whole buffer, as in nccl-tests: the allreduce vector, the
 * reduce-scatter input, the allgather output, the alltoall input. For the votes
 * (vote, vote_count, vote_allgather) it is the float32 gradient the sign bits stand
 * for (4 bytes per element, count = elements = bits) and busbw uses the allreduce
 * factor, so a vote row compares directly with a float32 allreduce row of the same
 * size.
 *
 * --check fills every input with a pattern that depends on (rank, index), runs the
 * collective once more after timing and counts the elements that differ from the
 * value computed locally. The patterns are small integers, so sums, products and
 * extrema are exact in every dtype in any reduction order (AVG alone is compared
 * with a tolerance of a few units in the last place).
 *
 * Only the public API is used, plus the internal pride_vote_allgather (the baseline
 * that allgathers every rank's 1-bit votes, as Distributed Lion's code does).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pride/pride.h>
#include "tool_size.h"

/* The allgather baseline, declared in collectives/vote_internal.h (tools see only
   include/; the static library resolves it). */
int pride_vote_allgather(pride_context_t *ctx, const uint64_t *sendbits, uint64_t *recvbits,
                         size_t nbits, pride_tie_t tie);

#define BENCH_EXIT_FAIL 1
#define BENCH_EXIT_USAGE 2
#define BENCH_VOTE_TIE PRIDE_TIE_ALTERNATE

enum bench_kind {
    BENCH_ALLREDUCE,
    BENCH_REDUCE_SCATTER,
    BENCH_ALLGATHER,
    BENCH_BROADCAST,
    BENCH_REDUCE,
    BENCH_ALLTOALL,
    BENCH_BARRIER,
    BENCH_VOTE,
    BENCH_VOTE_COUNT,
    BENCH_VOTE_ALLGATHER
};

enum bench_bus { BENCH_BUS_ALLREDUCE, BENCH_BUS_SPLIT, BENCH_BUS_ONE, BENCH_BUS_NONE };

static const struct bench_coll {
    const char *name;
    enum bench_kind kind;
    enum bench_bus bus;
    int blocks;  /* size holds nranks blocks of count elements */
    int rooted;
    int reduces; /* takes -d and -o */
    int vote;    /* sign bits standing for float32 elements */
} bench_colls[] = {
    {"allreduce", BENCH_ALLREDUCE, BENCH_BUS_ALLREDUCE, 0, 0, 1, 0},
    {"reduce_scatter", BENCH_REDUCE_SCATTER, BENCH_BUS_SPLIT, 1, 0, 1, 0},
    {"allgather", BENCH_ALLGATHER, BENCH_BUS_SPLIT, 1, 0, 0, 0},
    {"broadcast", BENCH_BROADCAST, BENCH_BUS_ONE, 0, 1, 0, 0},
    {"reduce", BENCH_REDUCE, BENCH_BUS_ONE, 0, 1, 1, 0},
    {"alltoall", BENCH_ALLTOALL, BENCH_BUS_SPLIT, 1, 0, 0, 0},
    {"barrier", BENCH_BARRIER, BENCH_BUS_NONE, 0, 0, 0, 0},
    {"vote", BENCH_VOTE, BENCH_BUS_ALLREDUCE, 0, 0, 0, 1},
    {"vote_count", BENCH_VOTE_COUNT, BENCH_BUS_ALLREDUCE, 0, 0, 0, 1},
    {"vote_allgather", BENCH_VOTE_ALLGATHER, BENCH_BUS_ALLREDUCE, 0, 0, 0, 1},
};

static const struct bench_dtype {
    const char *name;
    pride_dtype_t dt;
    size_t size;
    int is_float;
    double eps; /* unit roundoff of the float types */
} bench_dtypes[] = {
    {"int8", PRIDE_INT8, 1, 0, 0},         {"uint8", PRIDE_UINT8, 1, 0, 0},
    {"int32", PRIDE_INT32, 4, 0, 0},       {"uint32", PRIDE_UINT32, 4, 0, 0},
    {"int64", PRIDE_INT64, 8, 0, 0},       {"uint64", PRIDE_UINT64, 8, 0, 0},
    {"float16", PRIDE_FLOAT16, 2, 1, 0x1p-11}, {"bfloat16", PRIDE_BFLOAT16, 2, 1, 0x1p-8},
    {"float32", PRIDE_FLOAT32, 4, 1, 0x1p-24}, {"float64", PRIDE_FLOAT64, 8, 1, 0x1p-53},
};

static const struct bench_op {
    const char *name;
    pride_op_t op;
} bench_ops[] = {
    {"sum", PRIDE_SUM}, {"prod", PRIDE_PROD}, {"min", PRIDE_MIN},
    {"max", PRIDE_MAX}, {"avg", PRIDE_AVG},
};

static const char *const bench_algos[] = {"auto", "ring", "tree", "rhd"};

#define BENCH_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct bench_opts {
    const struct bench_coll *coll;
    const struct bench_dtype *dtype;
    const struct bench_op *op;
    const char *algo; /* NULL: not forced */
    size_t min_bytes, max_bytes;
    unsigned long factor;
    long iters, warmup;
    long root;
    int check;
    const char *json_path, *csv_path;
};

/* One measured size. */
struct bench_row {
    size_t bytes, count;
    double time_us, algbw, busbw;
    unsigned long long wrong;
    unsigned long long *sent; /* bytes sent per iteration, one per rank */
};

struct bench {
    struct bench_opts o;
    pride_context_t *ctx;
    int rank, nranks;
    const char *transport, *algo;
    size_t esize; /* bytes of one element (4 for the votes) */
    /* current size */
    size_t count;            /* elements (bits for the votes) in the count column */
    size_t nsend, nrecv;     /* elements in send / recv buffer (words / bytes for votes) */
    void *send, *recv;       /* allocated for the largest size */
    FILE *json, *csv;
    int json_rows;
};

static const char bench_usage[] =
    "usage: pride-bench [options]   (run one process per rank, e.g. under pride-run)\n"
    "  -c COLLECTIVE  allreduce reduce_scatter allgather broadcast reduce alltoall barrier\n"
    "                 vote vote_count vote_allgather            (default allreduce)\n"
    "  -b MIN -e MAX  size range in bytes, K/M/G = powers of 1024  (default 8 .. 64M)\n"
    "  -f FACTOR      multiply the size by FACTOR (integer >= 2)    (default 2)\n"
    "  -n ITERS       timed iterations per size                     (default 20)\n"
    "  -w WARMUP      untimed iterations before them                (default 5)\n"
    "  -d DTYPE       int8 uint8 int32 uint32 int64 uint64 float16 bfloat16 float32 float64\n"
    "                                                               (default float32)\n"
    "  -o OP          sum prod min max avg                          (default sum)\n"
    "  -a ALGO        allreduce algorithm: auto ring tree rhd (sets PRIDE_ALLREDUCE_ALGO)\n"
    "  -r ROOT        root of broadcast and reduce                  (default 0)\n"
    "  --check        verify results; #wrong counts wrong elements; exit 1 if any\n"
    "  --json FILE    write one JSON object per size (array) to FILE\n"
    "  --csv FILE     write one CSV row per size to FILE\n"
    "  --help         this text\n"
    "Size is the whole buffer (nccl-tests convention); for the votes it is the float32\n"
    "gradient the sign bits stand for (4 bytes per element). Time is the largest mean\n"
    "over ranks, in microseconds; GB = 1e9 bytes. Exit status: 0 ok, 1 failure or wrong\n"
    "results, 2 bad usage.\n";

static void bench_die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void bench_die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pride-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try --help)\n");
    va_end(ap);
    exit(BENCH_EXIT_USAGE);
}


static int bench_parse_long(const char *s, long min, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min)
        return -1;
    *out = v;
    return 0;
}

static void bench_parse(int argc, char **argv, struct bench_opts *o)
{
    enum { OPT_CHECK = 256, OPT_JSON, OPT_CSV, OPT_HELP };
    static const struct option longopts[] = {
        {"check", no_argument, NULL, OPT_CHECK},
        {"json", required_argument, NULL, OPT_JSON},
        {"csv", required_argument, NULL, OPT_CSV},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int dtype_given = 0, op_given = 0;
    long factor = 2;
    *o = (struct bench_opts){.coll = &bench_colls[0], .dtype = &bench_dtypes[8],
                             .op = &bench_ops[0], .min_bytes = 8, .max_bytes = 64u << 20,
                             .factor = 2, .iters = 20, .warmup = 5, .root = 0};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:b:e:f:n:w:d:o:a:r:h", longopts, NULL)) != -1) {
        size_t i;
        switch (c) {
        case 'c':
            for (i = 0; i < BENCH_LEN(bench_colls) && strcmp(optarg, bench_colls[i].name); i++)
                ;
            if (i == BENCH_LEN(bench_colls))
                bench_die_usage("unknown collective '%s'", optarg);
            o->coll = &bench_colls[i];
            break;
        case 'b':
            if (tool_parse_size(optarg, &o->min_bytes))
                bench_die_usage("bad size '%s' for -b", optarg);
            break;
        case 'e':
            if (tool_parse_size(optarg, &o->max_bytes))
                bench_die_usage("bad size '%s' for -e", optarg);
            break;
        case 'f':
            if (bench_parse_long(optarg, 2, &factor))
                bench_die_usage("bad factor '%s' for -f (an integer >= 2)", optarg);
            o->factor = (unsigned long)factor;
            break;
        case 'n':
            if (bench_parse_long(optarg, 1, &o->iters))
                bench_die_usage("bad iteration count '%s' for -n (an integer >= 1)", optarg);
            break;
        case 'w':
            if (bench_parse_long(optarg, 0, &o->warmup))
                bench_die_usage("bad warm-up count '%s' for -w (an integer >= 0)", optarg);
            break;
        case 'd':
            for (i = 0; i < BENCH_LEN(bench_dtypes) && strcmp(optarg, bench_dtypes[i].name); i++)
                ;
            if (i == BENCH_LEN(bench_dtypes))
                bench_die_usage("unknown dtype '%s'", optarg);
            o->dtype = &bench_dtypes[i];
            dtype_given = 1;
            break;
        case 'o':
            for (i = 0; i < BENCH_LEN(bench_ops) && strcmp(optarg, bench_ops[i].name); i++)
                ;
            if (i == BENCH_LEN(bench_ops))
                bench_die_usage("unknown op '%s'", optarg);
            o->op = &bench_ops[i];
            op_given = 1;
            break;
        case 'a':
            for (i = 0; i < BENCH_LEN(bench_algos) && strcmp(optarg, bench_algos[i]); i++)
                ;
            if (i == BENCH_LEN(bench_algos))
                bench_die_usage("unknown algorithm '%s' (auto, ring, tree or rhd)", optarg);
            o->algo = optarg;
            break;
        case 'r':
            if (bench_parse_long(optarg, 0, &o->root))
                bench_die_usage("bad root '%s' for -r", optarg);
            break;
        case OPT_CHECK: o->check = 1; break;
        case OPT_JSON: o->json_path = optarg; break;
        case OPT_CSV: o->csv_path = optarg; break;
        case 'h':
        case OPT_HELP: fputs(bench_usage, stdout); exit(0);
        case ':':
            if (optopt > 0 && optopt < 256)
                bench_die_usage("option '-%c' needs a value", optopt);
            bench_die_usage("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt > 0 && optopt < 256)
                bench_die_usage("unknown option '-%c'", optopt);
            bench_die_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        bench_die_usage("unexpected argument '%s'", argv[optind]);
    if (o->min_bytes > o->max_bytes)
        bench_die_usage("-b %zu is larger than -e %zu", o->min_bytes, o->max_bytes);
    if (o->coll->vote && dtype_given)
        bench_die_usage("-d does not apply to %s (votes carry sign bits)", o->coll->name);
    if (!o->coll->reduces && op_given)
        bench_die_usage("-o does not apply to %s", o->coll->name);
    if (o->coll->reduces && o->op->op == PRIDE_AVG && !o->dtype->is_float)
        bench_die_usage("avg needs a floating dtype, not %s", o->dtype->name);
}

/* ---- element values ---------------------------------------------------------- */

static uint16_t bench_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, man = x & 0x7fffffu;
    int e = (int)((x >> 23) & 0xffu) - 127 + 15;
    if (((x >> 23) & 0xffu) == 0xffu)
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal half: round the 24-bit significand to 2^-24 units */
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000u;
        unsigned shift = (unsigned)(14 - e);
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++; /* a carry into the exponent is still the right rounding */
    return (uint16_t)h;
}

static double bench_f16_to_double(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v = exp == 0 ? ldexp(man, -24)
               : exp == 31 ? (man ? NAN : INFINITY)
                           : ldexp(man | 0x400, exp - 25);
    return (h & 0x8000) ? -v : v;
}

static uint16_t bench_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static double bench_bf16_to_double(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* Store a small non-negative integer (the fill patterns) as element i. */
static void bench_put(pride_dtype_t dt, void *buf, size_t i, unsigned v)
{
    switch (dt) {
    case PRIDE_INT8: ((int8_t *)buf)[i] = (int8_t)v; break;
    case PRIDE_UINT8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
    case PRIDE_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case PRIDE_UINT32: ((uint32_t *)buf)[i] = v; break;
    case PRIDE_INT64: ((int64_t *)buf)[i] = v; break;
    case PRIDE_UINT64: ((uint64_t *)buf)[i] = v; break;
    case PRIDE_FLOAT16: ((uint16_t *)buf)[i] = bench_f32_to_f16((float)v); break;
    case PRIDE_BFLOAT16: ((uint16_t *)buf)[i] = bench_f32_to_bf16((float)v); break;
    case PRIDE_FLOAT32: ((float *)buf)[i] = (float)v; break;
    case PRIDE_FLOAT64: ((double *)buf)[i] = v; break;
    }
}

/* Element i of an integer buffer, as its raw bits zero-extended. */
static uint64_t bench_get_bits(pride_dtype_t dt, const void *buf, size_t i)
{
    switch (dt) {
    case PRIDE_INT8:
    case PRIDE_UINT8: return ((const uint8_t *)buf)[i];
    case PRIDE_INT32:
    case PRIDE_UINT32: return ((const uint32_t *)buf)[i];
    default: return ((const uint64_t *)buf)[i];
    }
}

/* Element i of a float buffer. */
static double bench_get_real(pride_dtype_t dt, const void *buf, size_t i)
{
    switch (dt) {
    case PRIDE_FLOAT16: return bench_f16_to_double(((const uint16_t *)buf)[i]);
    case PRIDE_BFLOAT16: return bench_bf16_to_double(((const uint16_t *)buf)[i]);
    case PRIDE_FLOAT32: return ((const float *)buf)[i];
    default: return ((const double *)buf)[i];
    }
}

/* The value rank r holds at global index i. Small enough that every partial sum
   (4 per rank), product (a power of two) and extremum is exact in every dtype. */
static unsigned bench_value(pride_op_t op, int r, size_t i)
{
    unsigned h = (unsigned)((i * 7 + (size_t)r * 13) % 61);
    switch (op) {
    case PRIDE_SUM:
    case PRIDE_AVG: return h % 5;
    case PRIDE_PROD: return h % 5 == 0 ? 2 : 1;
    default: return h;
    }
}

/* Sign bit of rank r for element i: a mixed hash, so counts spread over 0..P. */
static unsigned bench_sign(int r, size_t i)
{
    uint64_t x = (uint64_t)i * UINT64_C(0x9E3779B97F4A7C15) +
                 (uint64_t)(r + 1) * UINT64_C(0xBF58476D1CE4E5B9);
    x ^= x >> 31;
    x *= UINT64_C(0x94D049BB133111EB);
    return (unsigned)(x >> 63);
}

/* Rank r's values at global indices 0..n-1 (alltoall and reduce-scatter inputs are
   indexed over the whole buffer, so block j of rank r holds indices j*count..). */
static void bench_fill(pride_dtype_t dt, pride_op_t op, void *buf, int r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bench_put(dt, buf, i, bench_value(op, r, i));
}

/* Rank r's packed signs for nbits elements; bits past nbits are set, to check that
   they are ignored. */
static void bench_fill_signs(uint64_t *words, int r, size_t nbits)
{
    size_t nwords = (nbits + 63) / 64;
    for (size_t w = 0; w < nwords; w++) {
        uint64_t v = 0;
        for (unsigned b = 0; b < 64; b++) {
            size_t i = w * 64 + b;
            v |= (uint64_t)(i < nbits ? bench_sign(r, i) : 1) << b;
        }
        words[w] = v;
    }
}

/* ---- the collective under test -------------------------------------------------- */

static int bench_call(struct bench *b)
{
    pride_context_t *ctx = b->ctx;
    pride_dtype_t dt = b->o.dtype->dt;
    pride_op_t op = b->o.op->op;
    int root = (int)b->o.root;
    switch (b->o.coll->kind) {
    case BENCH_ALLREDUCE: return pride_allreduce(ctx, b->send, b->recv, b->count, dt, op);
    case BENCH_REDUCE_SCATTER:
        return pride_reduce_scatter(ctx, b->send, b->recv, b->count, dt, op);
    case BENCH_ALLGATHER: return pride_allgather(ctx, b->send, b->recv, b->count, dt);
    case BENCH_BROADCAST: return pride_broadcast(ctx, b->send, b->count, dt, root);
    case BENCH_REDUCE: return pride_reduce(ctx, b->send, b->recv, b->count, dt, op, root);
    case BENCH_ALLTOALL: return pride_alltoall(ctx, b->send, b->recv, b->count, dt);
    case BENCH_BARRIER: return pride_barrier(ctx);
    case BENCH_VOTE: return pride_vote(ctx, b->send, b->recv, b->count, BENCH_VOTE_TIE);
    case BENCH_VOTE_COUNT: return pride_vote_count(ctx, b->send, b->recv, b->count);
    case BENCH_VOTE_ALLGATHER:
        return pride_vote_allgather(ctx, b->send, b->recv, b->count, BENCH_VOTE_TIE);
    }
    return PRIDE_ERR_INVALID;
}

/* Set count, nsend and nrecv for a size in bytes; returns the bytes actually moved
   (rounded down to whole elements, or whole blocks of nranks elements). */
static size_t bench_shape(struct bench *b, size_t bytes)
{
    const struct bench_coll *c = b->o.coll;
    size_t unit = b->esize * (c->blocks ? (size_t)b->nranks : 1);
    size_t n = bytes / unit, P = (size_t)b->nranks;
    b->count = n;
    switch (c->kind) {
    case BENCH_REDUCE_SCATTER: b->nsend = n * P; b->nrecv = n; break;
    case BENCH_ALLGATHER: b->nsend = n; b->nrecv = n * P; break;
    case BENCH_ALLTOALL: b->nsend = b->nrecv = n * P; break;
    case BENCH_BROADCAST: b->nsend = n; b->nrecv = 0; break;
    case BENCH_BARRIER: b->count = b->nsend = b->nrecv = 0; return 0;
    case BENCH_VOTE:
    case BENCH_VOTE_ALLGATHER: b->nsend = b->nrecv = (n + 63) / 64; break;
    case BENCH_VOTE_COUNT: b->nsend = (n + 63) / 64; b->nrecv = n; break;
    default: b->nsend = b->nrecv = n; break;
    }
    return n * unit;
}

/* Bytes of the send and receive buffers for the current shape. */
static size_t bench_send_bytes(const struct bench *b)
{
    return b->o.coll->vote ? b->nsend * 8 : b->nsend * b->esize;
}

static size_t bench_recv_bytes(const struct bench *b)
{
    switch (b->o.coll->kind) {
    case BENCH_VOTE:
    case BENCH_VOTE_ALLGATHER: return b->nrecv * 8;
    case BENCH_VOTE_COUNT: return b->nrecv;
    default: return b->nrecv * b->esize;
    }
}

/* Fill this rank's inputs and poison its outputs. */
static void bench_prepare(struct bench *b)
{
    pride_dtype_t dt = b->o.dtype->dt;
    pride_op_t op = b->o.coll->reduces ? b->o.op->op : PRIDE_MAX;
    if (b->o.coll->vote) {
        bench_fill_signs(b->send, b->rank, b->count);
    } else if (b->o.coll->kind == BENCH_BROADCAST && b->rank != b->o.root) {
        memset(b->send, 0xff, bench_send_bytes(b));
    } else {
        bench_fill(dt, op, b->send, b->rank, b->nsend);
    }
    memset(b->recv, 0xff, bench_recv_bytes(b));
}

/* Does element `at` of buf hold the reduction over ranks of their values at global
   index gi? */
static int bench_reduced_ok(const struct bench *b, const void *buf, size_t at, size_t gi)
{
    const struct bench_dtype *d = b->o.dtype;
    pride_op_t op = b->o.op->op;
    if (!d->is_float) {
        uint64_t acc = bench_value(op, 0, gi);
        for (int r = 1; r < b->nranks; r++) {
            uint64_t v = bench_value(op, r, gi);
            switch (op) {
            case PRIDE_SUM: acc += v; break;
            case PRIDE_PROD: acc *= v; break;
            case PRIDE_MIN: acc = v < acc ? v : acc; break;
            default: acc = v > acc ? v : acc; break;
            }
        }
        uint64_t mask = d->size == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * d->size)) - 1;
        return (acc & mask) == bench_get_bits(d->dt, buf, at);
    }
    double acc = bench_value(op, 0, gi);
    for (int r = 1; r < b->nranks; r++) {
        double v = bench_value(op, r, gi);
        switch (op) {
        case PRIDE_SUM:
        case PRIDE_AVG: acc += v; break;
        case PRIDE_PROD: acc *= v; break;
        case PRIDE_MIN: acc = fmin(acc, v); break;
        default: acc = fmax(acc, v); break;
        }
    }
    double got = bench_get_real(d->dt, buf, at);
    if (op != PRIDE_AVG)
        return got == acc;
    acc /= b->nranks;
    return fabs(got - acc) <= (b->nranks + 1) * d->eps * fmax(1.0, fabs(acc));
}

static int bench_plain_ok(const struct bench *b, const void *buf, size_t at, int r, size_t gi)
{
    const struct bench_dtype *d = b->o.dtype;
    unsigned v = bench_value(PRIDE_MAX, r, gi);
    if (d->is_float)
        return bench_get_real(d->dt, buf, at) == v;
    return bench_get_bits(d->dt, buf, at) == v;
}

static unsigned bench_count_set(const struct bench *b, size_t i)
{
    unsigned c = 0;
    for (int r = 0; r < b->nranks; r++)
        c += bench_sign(r, i);
    return c;
}

static unsigned long long bench_count_wrong(const struct bench *b)
{
    unsigned long long wrong = 0;
    size_t n = b->count, P = (size_t)b->nranks, me = (size_t)b->rank;
    switch (b->o.coll->kind) {
    case BENCH_ALLREDUCE:
        for (size_t i = 0; i < n; i++)
            wrong += !bench_reduced_ok(b, b->recv, i, i);
        break;
    case BENCH_REDUCE:
        if (b->rank == b->o.root)
            for (size_t i = 0; i < n; i++)
                wrong += !bench_reduced_ok(b, b->recv, i, i);
        break;
    case BENCH_REDUCE_SCATTER:
        for (size_t i = 0; i < n; i++)
            wrong += !bench_reduced_ok(b, b->recv, i, me * n + i);
        break;
    case BENCH_ALLGATHER:
        for (size_t r = 0; r < P; r++)
            for (size_t i = 0; i < n; i++)
                wrong += !bench_plain_ok(b, b->recv, r * n + i, (int)r, i);
        break;
    case BENCH_ALLTOALL:
        for (size_t r = 0; r < P; r++)
            for (size_t i = 0; i < n; i++)
                wrong += !bench_plain_ok(b, b->recv, r * n + i, (int)r, me * n + i);
        break;
    case BENCH_BROADCAST:
        for (size_t i = 0; i < n; i++)
            wrong += !bench_plain_ok(b, b->send, i, (int)b->o.root, i);
        break;
    case BENCH_BARRIER: break;
    case BENCH_VOTE:
    case BENCH_VOTE_ALLGATHER: {
        const uint64_t *got = b->recv;
        for (size_t i = 0; i < (n + 63) / 64 * 64; i++) {
            unsigned want = 0;
            if (i < n) {
                unsigned c = bench_count_set(b, i);
                want = 2 * c > P ? 1 : 2 * c < P ? 0 : (i % 2 == 0);
            }
            wrong += ((got[i / 64] >> (i % 64)) & 1) != want;
        }
        break;
    }
    case BENCH_VOTE_COUNT: {
        const uint8_t *got = b->recv;
        for (size_t i = 0; i < n; i++)
            wrong += got[i] != bench_count_set(b, i);
        break;
    }
    }
    return wrong;
}

/* ---- measuring and reporting ------------------------------------------------------ */

static double bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int bench_fail(struct bench *b, const char *what, int st)
{
    fprintf(stderr, "pride-bench: rank %d: %s: %s (%s)\n", b->rank, what, pride_strerror(st),
            pride_last_error(b->ctx));
    return BENCH_EXIT_FAIL;
}

static double bench_bus_factor(const struct bench *b)
{
    double P = b->nranks;
    switch (b->o.coll->bus) {
    case BENCH_BUS_ALLREDUCE: return 2 * (P - 1) / P;
    case BENCH_BUS_SPLIT: return (P - 1) / P;
    case BENCH_BUS_ONE: return 1;
    default: return 0;
    }
}

/* Time one size (and check it with --check); every rank gets the same row. */
static int bench_measure(struct bench *b, size_t bytes, struct bench_row *row)
{
    int st;
    bench_prepare(b);
    for (long i = 0; i < b->o.warmup; i++)
        if ((st = bench_call(b)))
            return bench_fail(b, b->o.coll->name, st);
    if ((st = pride_barrier(b->ctx)))
        return bench_fail(b, "pride_barrier", st);
    if ((st = pride_reset_stats(b->ctx)))
        return bench_fail(b, "pride_reset_stats", st);
    double t0 = bench_now_us();
    for (long i = 0; i < b->o.iters; i++)
        if ((st = bench_call(b)))
            return bench_fail(b, b->o.coll->name, st);
    double mean = (bench_now_us() - t0) / (double)b->o.iters;
    pride_stats_t stats = PRIDE_STATS_INIT;
    if ((st = pride_get_stats(b->ctx, &stats)))
        return bench_fail(b, "pride_get_stats", st);
    unsigned long long sent = stats.bytes_sent / (unsigned long long)b->o.iters;
    if ((st = pride_allreduce(b->ctx, &mean, &row->time_us, 1, PRIDE_FLOAT64, PRIDE_MAX)))
        return bench_fail(b, "pride_allreduce(time)", st);
    if ((st = pride_allgather(b->ctx, &sent, row->sent, 1, PRIDE_UINT64)))
        return bench_fail(b, "pride_allgather(bytes sent)", st);
    unsigned long long wrong = 0;
    if (b->o.check) {
        bench_prepare(b);
        if ((st = bench_call(b)))
            return bench_fail(b, b->o.coll->name, st);
        unsigned long long mine = bench_count_wrong(b);
        if ((st = pride_allreduce(b->ctx, &mine, &wrong, 1, PRIDE_UINT64, PRIDE_SUM)))
            return bench_fail(b, "pride_allreduce(#wrong)", st);
    }
    row->bytes = bytes;
    row->count = b->count;
    row->wrong = wrong;
    row->algbw = row->time_us > 0 ? (double)bytes / (row->time_us * 1e3) : 0;
    row->busbw = row->algbw * bench_bus_factor(b);
    return 0;
}

static const char *bench_type_name(const struct bench *b)
{
    return b->o.coll->vote ? "sign" : b->o.coll->kind == BENCH_BARRIER ? "none"
                                                                        : b->o.dtype->name;
}

static const char *bench_op_name(const struct bench *b)
{
    switch (b->o.coll->kind) {
    case BENCH_VOTE:
    case BENCH_VOTE_ALLGATHER: return "maj";
    case BENCH_VOTE_COUNT: return "count";
    default: return b->o.coll->reduces ? b->o.op->name : "none";
    }
}

static long bench_root_col(const struct bench *b)
{
    return b->o.coll->rooted ? b->o.root : -1;
}

/* A JSON string; the only strings that come from outside are names from the
   environment, escaped to be safe. */
static void bench_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void bench_print_row(struct bench *b, const struct bench_row *row)
{
    char wrong[32];
    if (b->o.check)
        snprintf(wrong, sizeof wrong, "%llu", row->wrong);
    else
        snprintf(wrong, sizeof wrong, "N/A");
    printf("%12zu  %12zu  %8s  %6s  %6ld  %9.2f  %7.3f  %7.3f  %6s\n", row->bytes, row->count,
           bench_type_name(b), bench_op_name(b), bench_root_col(b), row->time_us, row->algbw,
           row->busbw, wrong);
    fflush(stdout);

    unsigned long long maxsent = 0;
    for (int r = 0; r < b->nranks; r++)
        maxsent = row->sent[r] > maxsent ? row->sent[r] : maxsent;
    if (b->json) {
        FILE *f = b->json;
        fprintf(f, "%s\n  {\"collective\": \"%s\", \"nranks\": %d, \"transport\": ",
                b->json_rows++ ? "," : "", b->o.coll->name, b->nranks);
        bench_json_str(f, b->transport);
        fprintf(f, ", \"algo\": ");
        bench_json_str(f, b->algo);
        fprintf(f,
                ", \"size\": %zu, \"count\": %zu, \"type\": \"%s\", \"redop\": \"%s\", "
                "\"root\": %ld, \"time_us\": %.3f, \"algbw_gbps\": %.6f, \"busbw_gbps\": %.6f, ",
                row->bytes, row->count, bench_type_name(b), bench_op_name(b), bench_root_col(b),
                row->time_us, row->algbw, row->busbw);
        if (b->o.check)
            fprintf(f, "\"wrong\": %llu, ", row->wrong);
        else
            fprintf(f, "\"wrong\": null, ");
        fprintf(f, "\"iters\": %ld, \"warmup\": %ld, \"bytes_sent\": %llu, "
                   "\"bytes_sent_per_rank\": [",
                b->o.iters, b->o.warmup, maxsent);
        for (int r = 0; r < b->nranks; r++)
            fprintf(f, "%s%llu", r ? ", " : "", row->sent[r]);
        fprintf(f, "]}");
    }
    if (b->csv)
        fprintf(b->csv, "%s,%d,%s,%s,%zu,%zu,%s,%s,%ld,%.3f,%.6f,%.6f,%s,%ld,%ld,%llu\n",
                b->o.coll->name, b->nranks, b->transport, b->algo, row->bytes, row->count,
                bench_type_name(b), bench_op_name(b), bench_root_col(b), row->time_us,
                row->algbw, row->busbw, b->o.check ? wrong : "", b->o.iters, b->o.warmup,
                maxsent);
}

static void bench_print_header(const struct bench *b)
{
    printf("# pride-bench: %s, nranks %d, transport %s, algo %s\n", b->o.coll->name, b->nranks,
           b->transport, b->algo);
    printf("# iters %ld, warmup %ld, check %s%s\n", b->o.iters, b->o.warmup,
           b->o.check ? "on" : "off",
           b->o.coll->vote ? "; size = float32 gradient the signs stand for" : "");
    printf("#\n");
    printf("# %10s  %12s  %8s  %6s  %6s  %9s  %7s  %7s  %6s\n", "size", "count", "type", "redop",
           "root", "time", "algbw", "busbw", "#wrong");
    printf("# %10s  %12s  %8s  %6s  %6s  %9s  %7s  %7s  %6s\n", "(B)", "(elements)", "", "", "",
           "(us)", "(GB/s)", "(GB/s)", "");
    fflush(stdout);
}

/* Open the output files on rank 0 and check what only a started context can tell;
   every rank learns the worst outcome, so all stop together. */
static int bench_setup(struct bench *b)
{
    int bad = 0, worst = 0, st;
    if (b->o.coll->rooted && b->o.root >= b->nranks) {
        if (b->rank == 0)
            fprintf(stderr, "pride-bench: root %ld is not a rank (nranks %d) (try --help)\n",
                    b->o.root, b->nranks);
        bad = BENCH_EXIT_USAGE;
    }
    if (!bad && b->rank == 0 && b->o.json_path) {
        if (!(b->json = fopen(b->o.json_path, "w"))) {
            fprintf(stderr, "pride-bench: cannot write %s: %s\n", b->o.json_path,
                    strerror(errno));
            bad = BENCH_EXIT_USAGE;
        } else {
            fputc('[', b->json);
        }
    }
    if (!bad && b->rank == 0 && b->o.csv_path) {
        if (!(b->csv = fopen(b->o.csv_path, "w"))) {
            fprintf(stderr, "pride-bench: cannot write %s: %s\n", b->o.csv_path,
                    strerror(errno));
            bad = BENCH_EXIT_USAGE;
        } else {
            fprintf(b->csv, "collective,nranks,transport,algo,size,count,type,redop,root,"
                            "time_us,algbw_gbps,busbw_gbps,wrong,iters,warmup,bytes_sent\n");
        }
    }
    if (!bad) {
        /* buffers for the largest size */
        bench_shape(b, b->o.max_bytes);
        size_t sb = bench_send_bytes(b), rb = bench_recv_bytes(b);
        b->send = malloc(sb ? sb : 1);
        b->recv = malloc(rb ? rb : 1);
        if (!b->send || !b->recv) {
            fprintf(stderr, "pride-bench: rank %d: out of memory for %zu + %zu bytes\n", b->rank,
                    sb, rb);
            bad = BENCH_EXIT_FAIL;
        }
    }
    if ((st = pride_allreduce(b->ctx, &bad, &worst, 1, PRIDE_INT32, PRIDE_MAX)))
        return bench_fail(b, "pride_allreduce(setup)", st);
    return worst;
}

static int bench_run(struct bench *b)
{
    int rc = bench_setup(b);
    if (rc)
        return rc;
    struct bench_row row = {.sent = calloc((size_t)b->nranks, sizeof *row.sent)};
    if (!row.sent) {
        fprintf(stderr, "pride-bench: rank %d: out of memory\n", b->rank);
        return BENCH_EXIT_FAIL;
    }
    if (b->rank == 0)
        bench_print_header(b);
    double busbw_sum = 0;
    int rows = 0;
    unsigned long long wrong = 0;
    size_t bytes = b->o.min_bytes;
    for (;;) {
        size_t moved = bench_shape(b, bytes);
        if (b->count > 0 || b->o.coll->kind == BENCH_BARRIER) {
            if ((rc = bench_measure(b, moved, &row)))
                break;
            if (b->rank == 0)
                bench_print_row(b, &row);
            busbw_sum += row.busbw;
            wrong += row.wrong;
            rows++;
        }
        if (b->o.coll->kind == BENCH_BARRIER || bytes > b->o.max_bytes / b->o.factor)
            break;
        bytes *= b->o.factor;
    }
    /* frames that came before their receive cost a copy: say how many, over all ranks */
    pride_stats_t ps = PRIDE_STATS_INIT;
    unsigned long long ux[2] = {0, 0};
    if (!rc && pride_get_stats(b->ctx, &ps) == PRIDE_OK) {
        unsigned long long mine[2] = {ps.unexpected_bytes, ps.bytes_received};
        if (pride_allreduce(b->ctx, mine, ux, 2, PRIDE_UINT64, PRIDE_SUM) != PRIDE_OK)
            ux[1] = 0;
    }
    if (!rc && b->rank == 0) {
        if (ux[1])
            printf("# Unexpected bytes     : %.2f%% of received (buffered, then copied)\n",
                   100.0 * (double)ux[0] / (double)ux[1]);
        if (rows == 0)
            printf("# no size in the range holds a whole element%s\n",
                   b->o.coll->blocks ? " per rank" : "");
        if (b->o.check)
            printf("# Wrong values         : %llu %s\n", wrong, wrong ? "FAILED" : "OK");
        printf("# Avg bus bandwidth    : %g\n", rows ? busbw_sum / rows : 0.0);
    }
    if (!rc && wrong)
        rc = BENCH_EXIT_FAIL;
    free(row.sent);
    return rc;
}

int main(int argc, char **argv)
{
    struct bench b = {.rank = -1};
    bench_parse(argc, argv, &b.o);
    if (b.o.algo && setenv("PRIDE_ALLREDUCE_ALGO", b.o.algo, 1)) {
        fprintf(stderr, "pride-bench: setenv: %s\n", strerror(errno));
        return BENCH_EXIT_FAIL;
    }
    const char *env;
    b.algo = (env = getenv("PRIDE_ALLREDUCE_ALGO")) && *env ? env : "auto";
    b.transport = (env = getenv("PRIDE_TRANSPORT")) && *env ? env : "tcp";
    b.esize = b.o.coll->vote ? 4 : b.o.dtype->size;

    int st = pride_init(NULL, &b.ctx);
    if (st) {
        fprintf(stderr, "pride-bench: pride_init: %s%s\n", pride_strerror(st),
                st == PRIDE_ERR_INVALID ? " (run under pride-run, or set PRIDE_RANK, "
                                          "PRIDE_NRANKS and PRIDE_STORE)"
                                        : "");
        return BENCH_EXIT_FAIL;
    }
    b.rank = pride_rank(b.ctx);
    b.nranks = pride_nranks(b.ctx);
    int rc = bench_run(&b);
    if (b.json) {
        fputs("\n]\n", b.json);
        if (fclose(b.json) && !rc) {
            fprintf(stderr, "pride-bench: writing %s failed\n", b.o.json_path);
            rc = BENCH_EXIT_FAIL;
        }
    }
    if (b.csv && fclose(b.csv) && !rc) {
        fprintf(stderr, "pride-bench: writing %s failed\n", b.o.csv_path);
        rc = BENCH_EXIT_FAIL;
    }
    free(b.send);
    free(b.recv);
    pride_finalize(b.ctx);
    return rc;
}
