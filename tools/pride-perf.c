/*
 * pride-perf: point-to-point bandwidth and latency between rank 0 and rank 1 over the
 * context's transport, with the columns of perftest (ib_send_bw, ib_send_lat).
 *
 *   -t bw:  #bytes #iterations BW peak[MB/sec] BW average[MB/sec] MsgRate[Mpps]
 *   -t lat: #bytes #iterations t_min[usec] t_max[usec] t_typical[usec] t_avg[usec]
 *           t_stdev[usec] 99% percentile[usec] 99.9% percentile[usec]
 *
 * The one idea of the bandwidth test (osu_bw's scheme): messages go in rounds of
 * `window` sends, all outstanding at once; the receiver answers every round with a
 * small acknowledgement, and rank 0 times each round from its first send to that
 * acknowledgement. A round is therefore timed end to end: a send that completes
 * locally (the bytes sit in a socket buffer) is not counted as delivered. BW average
 * is all timed rounds together, BW peak the best round (so never below the average).
 * With --bidir both ranks stream at once; #iterations counts the messages of one
 * direction and the rates are the sum of both directions (perftest -b).
 *
 * Latency is a ping-pong: half of each round trip measured on rank 0, t_typical the
 * median, percentiles by nearest rank.
 *
 * The public API has collectives only, so this tool uses the internal layer the
 * collectives are written with (collectives/coll.h): one P2P "collective" per row,
 * whose frames carry the message size, so two ranks given different sizes fail with
 * PRIDE_ERR_MISMATCH instead of reading garbage.
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

#include <pride/pride.h>

#include "coll.h"
#include "tool_size.h"

#define PERF_EXIT_FAIL 1
#define PERF_EXIT_USAGE 2
#define PERF_MB 1e6                     /* perftest's default MB */
#define PERF_INFLIGHT_CAP (64ull << 20) /* window x size stays below this */
#define PERF_ROW_BYTES (1ull << 30)     /* default iterations move at most this */
#define PERF_DEF_ITERS 1000
#define PERF_MIN_ITERS 10
#define PERF_MAX_COUNT 100000000L /* -n, -w: tags stay below PERF_TAG_ACK */
#define PERF_MAX_SIZE (1ull << 30)
#define PERF_MAX_WINDOW 65536
#define PERF_SWEEP_MIN 2
#define PERF_SWEEP_MAX (8u << 20)
#define PERF_TAG_ACK (1u << 30)     /* + round: acknowledgements */
#define PERF_TAG_REPORT 0xffffffffu /* rank 1's count of wrong bytes */

enum perf_mode { PERF_BW, PERF_LAT };

struct perf_opts {
    enum perf_mode mode;
    size_t size; /* 0: default for the mode */
    int sweep;   /* -a */
    long iters;  /* 0: by size */
    long warmup; /* -1: by size */
    long window;
    int bidir;
    int check;
    const char *transport, *provider, *json_path;
};

struct perf_row {
    size_t bytes;
    long iters, window;
    double bw_peak, bw_avg, msg_rate;                          /* bw */
    double t_min, t_max, t_typ, t_avg, t_stdev, t_p99, t_p999; /* lat, usec */
    unsigned long long wrong;
};

struct perf {
    struct perf_opts o;
    pride_context_t *ctx;
    int rank, peer;
    FILE *json;
    int json_rows;
    /* What a failed row may leave posted (a late RDMA write still reads or writes it)
       lives until pride_finalize has closed the transport: the small transfers here,
       the row's buffers in keep. */
    struct pride_xfer xs, xr, xa, xrep;
    uint64_t ack, rep;
    void *keep[4];
};

/* Free a row's buffers, or keep them for after pride_finalize if the row failed. */
static void perf_release(struct perf *p, int st, void *a, void *b, void *c, void *d)
{
    void *v[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        if (st)
            p->keep[i] = v[i];
        else
            free(v[i]);
    }
}

static const char perf_usage[] =
    "usage: pride-perf [options]   (two ranks, e.g. pride-run -n 2 pride-perf ...)\n"
    "Point-to-point bandwidth and latency between rank 0 and rank 1; rank 0 prints.\n"
    "  -t bw|lat           test: bandwidth (default) or ping-pong latency\n"
    "  -s SIZE             message size in bytes, K/M/G = powers of 1024\n"
    "                      (default 65536 for bw, 2 for lat; at most 1G)\n"
    "  -a                  all sizes 2 .. 8M, powers of two\n"
    "  -n ITERS            messages (bw) or round trips (lat) per size (default 1000,\n"
    "                      fewer for large sizes so a row moves at most 1 GiB, at least 10)\n"
    "  -w WARMUP           untimed ones before them (default: bw one window or ITERS/10,\n"
    "                      whichever is more; lat ITERS/10, at least 1)\n"
    "  --window W          bw: sends outstanding per round (default 64; fewer for large\n"
    "                      sizes so W x size stays within 64 MiB)\n"
    "  --bidir             bw: both ranks send ITERS messages at once; BW and MsgRate are\n"
    "                      the sum of both ways\n"
    "  --transport T       tcp, ofi or verbs (default $PRIDE_TRANSPORT, else tcp)\n"
    "  --provider P        ofi provider, e.g. \"tcp;ofi_rxm\" or shm (sets PRIDE_OFI_PROVIDER)\n"
    "  --check             fill every message with a pattern and verify it on receipt;\n"
    "                      counts wrong bytes, exit 1 if any (timings then include it)\n"
    "  --json FILE         rank 0 writes one JSON object per size (an array) to FILE\n"
    "  --help              this text\n"
    "bw: messages go in rounds of W sends; the receiver acknowledges each round and rank 0\n"
    "times it from its first send to the acknowledgement. BW average = bytes of all timed\n"
    "rounds / their time, BW peak = the best round, MsgRate = messages / time.\n"
    "MB = 1e6 bytes, Mpps = 1e6 messages per second (perftest's defaults).\n"
    "lat: ping-pong; every time is half a round trip measured on rank 0, in microseconds;\n"
    "t_typical is the median, percentiles are nearest-rank.\n"
    "Exit status: 0 ok, 1 failure or wrong bytes, 2 bad usage or not exactly 2 ranks.\n";

static void perf_die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void perf_die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pride-perf: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try --help)\n");
    va_end(ap);
    exit(PERF_EXIT_USAGE);
}


static int perf_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static void perf_parse(int argc, char **argv, struct perf_opts *o)
{
    enum {
        OPT_WINDOW = 256,
        OPT_BIDIR,
        OPT_TRANSPORT,
        OPT_PROVIDER,
        OPT_CHECK,
        OPT_JSON,
        OPT_HELP
    };
    static const struct option longopts[] = {
        {"window", required_argument, NULL, OPT_WINDOW},
        {"bidir", no_argument, NULL, OPT_BIDIR},
        {"transport", required_argument, NULL, OPT_TRANSPORT},
        {"provider", required_argument, NULL, OPT_PROVIDER},
        {"check", no_argument, NULL, OPT_CHECK},
        {"json", required_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    *o = (struct perf_opts){.mode = PERF_BW, .warmup = -1, .window = 64};
    int window_given = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":t:s:an:w:h", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!strcmp(optarg, "bw"))
                o->mode = PERF_BW;
            else if (!strcmp(optarg, "lat"))
                o->mode = PERF_LAT;
            else
                perf_die_usage("unknown test '%s' for -t (bw or lat)", optarg);
            break;
        case 's':
            if (tool_parse_size(optarg, &o->size) || o->size < 1 || o->size > PERF_MAX_SIZE)
                perf_die_usage("bad size '%s' for -s (1 .. 1G bytes)", optarg);
            break;
        case 'a':
            o->sweep = 1;
            break;
        case 'n':
            if (perf_parse_long(optarg, 1, PERF_MAX_COUNT, &o->iters))
                perf_die_usage("bad iteration count '%s' for -n (1 .. %ld)", optarg,
                               PERF_MAX_COUNT);
            break;
        case 'w':
            if (perf_parse_long(optarg, 0, PERF_MAX_COUNT, &o->warmup))
                perf_die_usage("bad warm-up count '%s' for -w (0 .. %ld)", optarg, PERF_MAX_COUNT);
            break;
        case OPT_WINDOW:
            if (perf_parse_long(optarg, 1, PERF_MAX_WINDOW, &o->window))
                perf_die_usage("bad window '%s' for --window (1 .. %d)", optarg, PERF_MAX_WINDOW);
            window_given = 1;
            break;
        case OPT_BIDIR:
            o->bidir = 1;
            break;
        case OPT_TRANSPORT:
            if (strcmp(optarg, "tcp") && strcmp(optarg, "ofi") && strcmp(optarg, "verbs"))
                perf_die_usage("unknown transport '%s' (tcp, ofi or verbs)", optarg);
            o->transport = optarg;
            break;
        case OPT_PROVIDER:
            if (!*optarg)
                perf_die_usage("--provider needs a provider name");
            o->provider = optarg;
            break;
        case OPT_CHECK:
            o->check = 1;
            break;
        case OPT_JSON:
            o->json_path = optarg;
            break;
        case 'h':
        case OPT_HELP:
            fputs(perf_usage, stdout);
            exit(0);
        case ':':
            if (optopt > 0 && optopt < 256)
                perf_die_usage("option '-%c' needs a value", optopt);
            perf_die_usage("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt > 0 && optopt < 256)
                perf_die_usage("unknown option '-%c'", optopt);
            perf_die_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        perf_die_usage("unexpected argument '%s'", argv[optind]);
    if (o->sweep && o->size)
        perf_die_usage("-s and -a exclude each other");
    if (o->mode == PERF_LAT && (window_given || o->bidir))
        perf_die_usage("%s applies to -t bw only", window_given ? "--window" : "--bidir");
    if (o->provider && o->transport && strcmp(o->transport, "ofi"))
        perf_die_usage("--provider applies to --transport ofi only");
    if (!o->size)
        o->size = o->mode == PERF_BW ? 65536 : 2;
}

/* ---- payload pattern (--check) ---------------------------------------------------- */

static uint64_t perf_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Message `index` of size `len` sent by rank `from`: every byte depends on all three,
   so a stale, truncated, misdirected or reordered message shows as wrong bytes. */
static uint64_t perf_seed(size_t len, uint64_t index, int from)
{
    return perf_mix(((uint64_t)len << 20) ^ (index << 1) ^ (uint64_t)from);
}

static void perf_fill(uint8_t *b, size_t len, uint64_t seed)
{
    size_t i = 0;
    for (uint64_t w = 0; i + 8 <= len; i += 8, w++) {
        uint64_t v = perf_mix(seed + w);
        memcpy(b + i, &v, 8);
    }
    if (i < len) {
        uint64_t v = perf_mix(seed + len / 8);
        memcpy(b + i, &v, len - i);
    }
}

static unsigned long long perf_verify(const uint8_t *b, size_t len, uint64_t seed)
{
    unsigned long long wrong = 0;
    for (size_t i = 0, w = 0; i < len; i += 8, w++) {
        uint64_t want = perf_mix(seed + w), got = 0;
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(&got, b + i, n);
        if (n < 8)
            want &= (1ull << (8 * n)) - 1;
        if (got != want)
            for (size_t k = 0; k < n; k++)
                wrong += ((got >> (8 * k)) & 0xff) != ((want >> (8 * k)) & 0xff);
    }
    return wrong;
}

/* ---- rows ------------------------------------------------------------------------- */

static long perf_iters(const struct perf_opts *o, size_t size)
{
    if (o->iters)
        return o->iters;
    unsigned long long fit = PERF_ROW_BYTES / size;
    return fit > PERF_DEF_ITERS   ? PERF_DEF_ITERS
           : fit < PERF_MIN_ITERS ? PERF_MIN_ITERS
                                  : (long)fit;
}

static long perf_window(const struct perf_opts *o, size_t size)
{
    unsigned long long fit = PERF_INFLIGHT_CAP / size;
    if (fit < 1)
        fit = 1;
    return (unsigned long long)o->window < fit ? o->window : (long)fit;
}

static long perf_warmup(const struct perf_opts *o, long iters, long window)
{
    if (o->warmup >= 0)
        return o->warmup;
    long w = (iters + 9) / 10;
    if (o->mode == PERF_BW && w < window)
        w = window;
    return w < 1 ? 1 : w;
}

/* Wait for xfers, with a fresh deadline: a row may run longer than one timeout, a
   round or a round trip may not. */
static int perf_wait(struct coll *c, struct pride_xfer **xs, int n)
{
    c->deadline_ns = pride_deadline_ns(c->ctx->timeout_ms);
    return coll_wait(c, xs, n);
}

/* Rank 1's count of wrong bytes goes to rank 0 at the end of every row. */
static int perf_report(struct perf *p, struct coll *c, unsigned long long *wrong)
{
    p->rep = *wrong;
    struct pride_xfer *xs[1] = {&p->xrep};
    int st = p->rank == 0 ? coll_irecv(c, &p->xrep, p->peer, PERF_TAG_REPORT, &p->rep, 8)
                          : coll_isend(c, &p->xrep, p->peer, PERF_TAG_REPORT, &p->rep, 8);
    if (!st)
        st = perf_wait(c, xs, 1);
    if (!st && p->rank == 0)
        *wrong += p->rep;
    return st;
}

static int perf_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[n]. */
static double perf_percentile(const double *v, long n, double q)
{
    long k = (long)ceil(q * (double)n) - 1;
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static int perf_lat_row(struct perf *p, struct coll *c, struct perf_row *row)
{
    size_t size = row->bytes;
    long warm = perf_warmup(&p->o, row->iters, 1), total = warm + row->iters;
    uint8_t *sbuf = malloc(size), *rbuf = malloc(size);
    double *t = p->rank == 0 ? malloc((size_t)row->iters * sizeof *t) : NULL;
    int st = PRIDE_OK;
    if (!sbuf || !rbuf || (p->rank == 0 && !t)) {
        st = pride_error(p->ctx, PRIDE_ERR_NOMEM, "no memory for two %zu-byte buffers", size);
        goto out;
    }
    memset(sbuf, 0x5a, size);
    memset(rbuf, 0, size);
    struct pride_xfer *both[2] = {&p->xs, &p->xr};
    if (p->rank == 0) {
        for (long i = 0; i < total && !st; i++) {
            if (p->o.check)
                perf_fill(sbuf, size, perf_seed(size, (uint64_t)i, 0));
            int64_t t0 = pride_now_ns();
            st = coll_irecv(c, &p->xr, p->peer, (uint32_t)i, rbuf, size);
            if (!st)
                st = coll_isend(c, &p->xs, p->peer, (uint32_t)i, sbuf, size);
            if (!st)
                st = perf_wait(c, both, 2);
            int64_t t1 = pride_now_ns();
            if (!st && p->o.check)
                row->wrong += perf_verify(rbuf, size, perf_seed(size, (uint64_t)i, 1));
            if (i >= warm)
                t[i - warm] = (double)(t1 - t0) / 2e3;
        }
    } else {
        /* Post the next receive before answering, so the ping never waits unexpected. */
        struct pride_xfer *pend[2] = {&p->xr, NULL};
        st = coll_irecv(c, &p->xr, p->peer, 0, rbuf, size);
        for (long i = 0; i < total && !st; i++) {
            st = perf_wait(c, pend, 2);
            if (st)
                break;
            if (p->o.check) {
                row->wrong += perf_verify(rbuf, size, perf_seed(size, (uint64_t)i, 0));
                perf_fill(sbuf, size, perf_seed(size, (uint64_t)i, 1));
            }
            if (i + 1 < total)
                st = coll_irecv(c, &p->xr, p->peer, (uint32_t)(i + 1), rbuf, size);
            if (!st)
                st = coll_isend(c, &p->xs, p->peer, (uint32_t)i, sbuf, size);
            pend[0] = i + 1 < total ? &p->xr : NULL;
            pend[1] = &p->xs;
        }
        if (!st && total > 0)
            st = perf_wait(c, &pend[1], 1);
    }
    if (!st)
        st = perf_report(p, c, &row->wrong);
    if (!st && p->rank == 0) {
        long n = row->iters;
        double sum = 0, sq = 0;
        for (long i = 0; i < n; i++)
            sum += t[i];
        row->t_avg = sum / (double)n;
        for (long i = 0; i < n; i++)
            sq += (t[i] - row->t_avg) * (t[i] - row->t_avg);
        row->t_stdev = sqrt(sq / (double)n);
        qsort(t, (size_t)n, sizeof *t, perf_cmp_double);
        row->t_min = t[0];
        row->t_max = t[n - 1];
        row->t_typ = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
        row->t_p99 = perf_percentile(t, n, 0.99);
        row->t_p999 = perf_percentile(t, n, 0.999);
    }
out:
    perf_release(p, st, sbuf, rbuf, t, NULL);
    return st;
}

/* Pools of `window` message slots; message i lives in slot i % window. */
struct perf_bw {
    size_t size;
    long window;
    uint8_t *spool, *rpool;
    struct pride_xfer *xf;  /* 2 x window */
    struct pride_xfer **xs; /* 2 x window + 1 */
    int sends, recvs;       /* does this rank send / receive data */
};

/* Post the receives of messages first .. first+k-1. */
static int perf_bw_post_recvs(struct perf *p, struct coll *c, struct perf_bw *b, long first, long k)
{
    int st = PRIDE_OK;
    for (long j = 0; j < k && !st; j++) {
        long i = first + j, s = i % b->window;
        st = coll_irecv(c, &b->xf[b->window + s], p->peer, (uint32_t)i,
                        b->rpool + (size_t)s * b->size, b->size);
    }
    return st;
}

/* One round of k messages starting at message `first`, round number r; next_k is the
   size of the round after it (0: none). On rank 0, *ns gets the round's time from the
   first send to its end: the acknowledgement, or with --bidir the last message from
   rank 1. One way, rank 1's receives of a round were posted before the previous
   acknowledgement (or before the first round), so no message arrives unexpected. */
static int perf_bw_round(struct perf *p, struct coll *c, struct perf_bw *b, long first, long k,
                         long next_k, long r, int64_t *ns, unsigned long long *wrong)
{
    size_t size = b->size;
    p->ack = (uint64_t)r;
    int n = 0, st = PRIDE_OK;
    int unidir_recv = b->recvs && !b->sends;
    if (b->sends && p->o.check)
        for (long j = 0; j < k; j++)
            perf_fill(b->spool + (size_t)((first + j) % b->window) * size, size,
                      perf_seed(size, (uint64_t)(first + j), p->rank));
    if (b->sends && !b->recvs) /* rank 0, one way: the acknowledgement ends the round */
        st = coll_irecv(c, &p->xa, p->peer, PERF_TAG_ACK + (uint32_t)r, &p->ack, 8);
    int64_t t0 = pride_now_ns();
    if (!st && b->recvs && b->sends) /* both ways: receives of this round now */
        st = perf_bw_post_recvs(p, c, b, first, k);
    for (long j = 0; j < k && !st && b->sends; j++) {
        long i = first + j, s = i % b->window;
        st = coll_isend(c, &b->xf[s], p->peer, (uint32_t)i, b->spool + (size_t)s * size, size);
    }
    if (st)
        return st;
    for (long j = 0; j < k; j++) {
        long s = (first + j) % b->window;
        if (b->sends)
            b->xs[n++] = &b->xf[s];
        if (b->recvs)
            b->xs[n++] = &b->xf[b->window + s];
    }
    if (b->sends && !b->recvs)
        b->xs[n++] = &p->xa;
    st = perf_wait(c, b->xs, n);
    int64_t t1 = pride_now_ns();
    if (st)
        return st;
    if (b->recvs && p->o.check)
        for (long j = 0; j < k; j++)
            *wrong += perf_verify(b->rpool + (size_t)((first + j) % b->window) * size, size,
                                  perf_seed(size, (uint64_t)(first + j), p->peer));
    if (unidir_recv) {
        /* rank 1, one way: post the next round's receives, then acknowledge this one */
        if (next_k)
            st = perf_bw_post_recvs(p, c, b, first + k, next_k);
        struct pride_xfer *xs[1] = {&p->xa};
        if (!st)
            st = coll_isend(c, &p->xa, p->peer, PERF_TAG_ACK + (uint32_t)r, &p->ack, 8);
        if (!st)
            st = perf_wait(c, xs, 1);
    }
    *ns = t1 - t0;
    return st;
}

static int perf_bw_row(struct perf *p, struct coll *c, struct perf_row *row)
{
    struct perf_bw b = {.size = row->bytes, .window = row->window};
    b.sends = p->rank == 0 || p->o.bidir;
    b.recvs = p->rank == 1 || p->o.bidir;
    long warm = perf_warmup(&p->o, row->iters, b.window), total = warm + row->iters;
    size_t pool = (size_t)b.window * b.size;
    int st = PRIDE_OK;
    b.spool = b.sends ? malloc(pool) : NULL;
    b.rpool = b.recvs ? malloc(pool) : NULL;
    b.xf = calloc(2 * (size_t)b.window, sizeof *b.xf);
    b.xs = calloc(2 * (size_t)b.window + 1, sizeof *b.xs);
    if ((b.sends && !b.spool) || (b.recvs && !b.rpool) || !b.xf || !b.xs) {
        st =
            pride_error(p->ctx, PRIDE_ERR_NOMEM, "no memory for %ld x %zu bytes", b.window, b.size);
        goto out;
    }
    if (b.spool)
        memset(b.spool, 0x5a, pool);
    if (b.rpool)
        memset(b.rpool, 0, pool);
    int dirs = p->o.bidir ? 2 : 1;
    double best = 0;
    int64_t timed_ns = 0;
    long r = 0;
    long first_k = warm ? warm : total;
    if (b.recvs && !b.sends) /* rank 1, one way: the first round's receives */
        st = perf_bw_post_recvs(p, c, &b, 0, first_k < b.window ? first_k : b.window);
    /* warm-up rounds, then timed rounds: each part starts a fresh round */
    int64_t start = 0;
    for (int part = 0; part < 2 && !st; part++) {
        long first = part ? warm : 0, end = part ? total : warm;
        if (part == 1)
            start = pride_now_ns();
        for (long i = first; i < end && !st; r++) {
            long k = end - i < b.window ? end - i : b.window;
            long after = i + k;
            long next_end = after < warm ? warm : total;
            long next_k = next_end - after < b.window ? next_end - after : b.window;
            int64_t ns = 0;
            st = perf_bw_round(p, c, &b, i, k, next_k, r, &ns, &row->wrong);
            if (!st && part == 1 && ns > 0) {
                double bw = (double)dirs * (double)k * (double)b.size / ((double)ns / 1e9);
                best = bw > best ? bw : best;
            }
            i += k;
        }
    }
    /* One way, the last acknowledgement ends the timing; both ways, rank 1's report
       (sent once it has every message of rank 0) does. */
    timed_ns = pride_now_ns() - start;
    if (!st)
        st = perf_report(p, c, &row->wrong);
    if (p->o.bidir)
        timed_ns = pride_now_ns() - start;
    if (!st && p->rank == 0) {
        double secs = (double)timed_ns / 1e9;
        row->bw_avg = (double)dirs * (double)row->iters * (double)b.size / secs / PERF_MB;
        row->msg_rate = (double)dirs * (double)row->iters / secs / 1e6;
        row->bw_peak = best / PERF_MB;
    }
out:
    perf_release(p, st, b.spool, b.rpool, b.xf, b.xs);
    return st;
}

/* ---- output ----------------------------------------------------------------------- */

static void perf_header(const struct perf *p)
{
    const char *tp = p->ctx->tp_ops->name;
    printf("# pride-perf %s, transport %s", p->o.mode == PERF_BW ? "bw" : "lat", tp);
    if (!strcmp(tp, "ofi")) {
        const char *prov = getenv("PRIDE_OFI_PROVIDER");
        printf(" (provider %s)", prov && *prov ? prov : "libfabric's first");
    }
    printf(", ");
    if (p->o.mode == PERF_BW)
        printf("%s, window %ld (at most 64 MiB in flight), MB = 1e6 bytes%s\n",
               p->o.bidir ? "rank 0 <-> rank 1" : "rank 0 -> rank 1", p->o.window,
               p->o.check ? ", --check" : "");
    else
        printf("ping-pong rank 0 <-> rank 1, half round trip in usec%s\n",
               p->o.check ? ", --check" : "");
    if (p->o.mode == PERF_BW)
        printf(" #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   "
               "MsgRate[Mpps]\n");
    else
        printf(" #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    "
               "t_avg[usec]    t_stdev[usec]   99%% percentile[usec]   99.9%% percentile[usec]\n");
    fflush(stdout);
}

static void perf_print_row(struct perf *p, const struct perf_row *w)
{
    if (p->o.mode == PERF_BW)
        printf(" %-10zu %-10ld     %-18.2f %-20.2f %.6f\n", w->bytes, w->iters, w->bw_peak,
               w->bw_avg, w->msg_rate);
    else
        printf(" %-7zu %-10ld %-14.2f %-12.2f %-16.2f %-14.2f %-15.2f %-22.2f %.2f\n", w->bytes,
               w->iters, w->t_min, w->t_max, w->t_typ, w->t_avg, w->t_stdev, w->t_p99, w->t_p999);
    fflush(stdout);
    if (!p->json)
        return;
    fprintf(p->json,
            "%s  {\"test\": \"%s\", \"transport\": \"%s\", \"bytes\": %zu, "
            "\"iterations\": %ld, ",
            p->json_rows++ ? ",\n" : "", p->o.mode == PERF_BW ? "bw" : "lat", p->ctx->tp_ops->name,
            w->bytes, w->iters);
    if (p->o.mode == PERF_BW)
        fprintf(p->json,
                "\"window\": %ld, \"bidir\": %s, \"bw_peak_MBps\": %.9g, "
                "\"bw_average_MBps\": %.9g, \"msg_rate_Mpps\": %.9g, ",
                w->window, p->o.bidir ? "true" : "false", w->bw_peak, w->bw_avg, w->msg_rate);
    else
        fprintf(p->json,
                "\"t_min_us\": %.9g, \"t_max_us\": %.9g, \"t_typical_us\": %.9g, "
                "\"t_avg_us\": %.9g, \"t_stdev_us\": %.9g, \"t_p99_us\": %.9g, "
                "\"t_p999_us\": %.9g, ",
                w->t_min, w->t_max, w->t_typ, w->t_avg, w->t_stdev, w->t_p99, w->t_p999);
    fprintf(p->json, "\"check\": %s, \"wrong\": %llu}", p->o.check ? "true" : "false", w->wrong);
}

/* Both ranks must run the same test; compare the options that shape the messages. */
static int perf_agree(struct perf *p, int ok)
{
    uint64_t mine[9] = {(uint64_t)p->o.mode,  (uint64_t)p->o.size,         (uint64_t)p->o.sweep,
                        (uint64_t)p->o.iters, (uint64_t)(p->o.warmup + 1), (uint64_t)p->o.window,
                        (uint64_t)p->o.bidir, (uint64_t)p->o.check,        (uint64_t)ok};
    uint64_t all[18];
    int st = pride_allgather(p->ctx, mine, all, 9, PRIDE_UINT64);
    if (st) {
        fprintf(stderr, "pride-perf: rank %d: exchanging options: %s\n", p->rank,
                pride_last_error(p->ctx));
        return PERF_EXIT_FAIL;
    }
    if (!all[8] || !all[17])
        return PERF_EXIT_FAIL; /* the rank that failed said why */
    if (memcmp(all, all + 9, 8 * sizeof *all)) {
        if (p->rank == 0)
            fprintf(stderr, "pride-perf: rank 0 and rank 1 were given different options "
                            "(-t, -s, -a, -n, -w, --window, --bidir, --check must match)\n");
        return PERF_EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct perf p = {0};
    perf_parse(argc, argv, &p.o);
    if (p.o.provider && setenv("PRIDE_OFI_PROVIDER", p.o.provider, 1)) {
        fprintf(stderr, "pride-perf: setenv: %s\n", strerror(errno));
        return PERF_EXIT_FAIL;
    }
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    cfg.transport = p.o.transport;
    int st = pride_init(&cfg, &p.ctx);
    if (st) { /* pride_init said why on stderr */
        fprintf(stderr, "pride-perf: cannot start the %s transport: %s\n",
                p.o.transport ? p.o.transport : "chosen", pride_strerror(st));
        return PERF_EXIT_FAIL;
    }
    p.rank = pride_rank(p.ctx);
    int n = pride_nranks(p.ctx), rc = 0;
    if (n != 2) {
        if (p.rank == 0)
            fprintf(stderr,
                    "pride-perf: needs exactly 2 ranks (rank 0 and rank 1), this job "
                    "has %d: run it as pride-run -n 2 pride-perf ...\n",
                    n);
        pride_finalize(p.ctx);
        return PERF_EXIT_USAGE;
    }
    p.peer = 1 - p.rank;
    int ok = 1;
    if (p.rank == 0 && p.o.json_path && !(p.json = fopen(p.o.json_path, "w"))) {
        fprintf(stderr, "pride-perf: cannot write %s: %s\n", p.o.json_path, strerror(errno));
        ok = 0;
    }
    rc = perf_agree(&p, ok);
    if (rc)
        goto done;
    if (p.rank == 0)
        perf_header(&p);
    if (p.json)
        fputs("[\n", p.json);
    unsigned long long wrong = 0;
    size_t first = p.o.sweep ? PERF_SWEEP_MIN : p.o.size,
           last = p.o.sweep ? PERF_SWEEP_MAX : p.o.size;
    for (size_t size = first; size <= last; size *= 2) {
        struct perf_row row = {.bytes = size,
                               .iters = perf_iters(&p.o, size),
                               .window = p.o.mode == PERF_BW ? perf_window(&p.o, size) : 1};
        struct coll c;
        st = coll_begin(&c, p.ctx, PRIDE_COLL_P2P, 0, 0, size, -1);
        if (!st)
            st = p.o.mode == PERF_BW ? perf_bw_row(&p, &c, &row) : perf_lat_row(&p, &c, &row);
        st = coll_end(&c, st);
        if (st) {
            fprintf(stderr, "pride-perf: rank %d: %zu bytes: %s: %s\n", p.rank, size,
                    pride_strerror(st), pride_last_error(p.ctx));
            rc = PERF_EXIT_FAIL;
            break;
        }
        if (p.rank == 0) {
            perf_print_row(&p, &row);
            if (row.wrong)
                fprintf(stderr, "pride-perf: %zu bytes: %llu wrong bytes received\n", size,
                        row.wrong);
        }
        wrong += row.wrong;
    }
    if (p.json) {
        fputs(p.json_rows ? "\n]\n" : "]\n", p.json);
        if (fclose(p.json)) {
            fprintf(stderr, "pride-perf: writing %s: %s\n", p.o.json_path, strerror(errno));
            rc = PERF_EXIT_FAIL;
        }
        p.json = NULL;
    }
    if (!rc && wrong)
        rc = PERF_EXIT_FAIL;
done:
    if (p.json)
        fclose(p.json);
    pride_finalize(p.ctx);
    for (int i = 0; i < 4; i++)
        free(p.keep[i]);
    return rc;
}
