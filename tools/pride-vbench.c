/*
 * pride-vbench: how fast the vote's bit-plane kernels run on this machine, beside
 * memcpy of the same bytes in the same run.
 *
 * Throughput is counted in bytes of sign input: one packed sign vector of --size
 * bytes (8·size elements, one bit each) per call. The plane adder adds it to counts
 * of P−1 contributions in place, as a ring step does; the majority compare turns
 * counts of P contributions (P's planes, --size bytes each) into --size bytes of
 * result; the fused add+majority (the ring's last step) does both without writing
 * the counts. Each is set beside memcpy of --size bytes: "signs %memcpy" is the time
 * memcpy takes for the sign bytes over the time the kernel takes for them. A kernel
 * touching more planes moves more bytes per sign byte (the "traffic" columns count
 * every plane read or written, memcpy's as 2·size), so its sign rate falls with the
 * plane count even when it streams as fast as memcpy.
 *
 * Timing: rounds of --iters calls, memcpy and kernel rounds interleaved so both see
 * the same load on a shared machine; each reports its best round. The portable path
 * is measured in a forked child with PRIDE_KERNELS=portable (the kernel path is
 * fixed per process on first use); the dispatched path in the parent.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../collectives/bitplane.h"
#include "tool_size.h"

#define VBENCH_MAXCFG 16
#define VBENCH_KINDS 3 /* add, majority, add+majority */

struct vbench_opts {
    size_t size; /* bytes of sign input per call */
    long iters;  /* calls per timed round */
    int rounds;  /* timed rounds per kernel (and as many memcpy rounds) */
    int ranks;   /* one configuration of this many ranks; 0: the plane sweep */
    const char *json;
};

/* One configuration: counts of ranks-1 contributions (nin planes) plus one vote
   gives counts of ranks (nout planes). */
struct vbench_cfg {
    int ranks, nin, nout;
};

/* Best GB/s of signs for each kernel and for the memcpy rounds beside it. */
struct vbench_result {
    double gbs[VBENCH_MAXCFG][VBENCH_KINDS];
    double memcpy_gbs[VBENCH_MAXCFG][VBENCH_KINDS];
};

static const char *const kind_names[VBENCH_KINDS] = {"add", "majority", "add+maj"};

static void vbench_usage(FILE *f)
{
    fprintf(f,
            "usage: pride-vbench [--size BYTES] [--iters N] [--rounds N] [--ranks P]\n"
            "                    [--json FILE]\n"
            "Measure the bit-plane vote kernels (plane adder, majority compare, fused\n"
            "add+majority) in GB/s of packed sign input, portable and dispatched, beside\n"
            "memcpy of the same bytes, interleaved round by round.\n"
            "  --size BYTES  sign input per call, suffixes K M G (default 64K, one chunk)\n"
            "  --iters N     calls per timed round (default: about 32 MB of signs)\n"
            "  --rounds N    timed rounds of each kernel and of memcpy, best taken\n"
            "                (default 15)\n"
            "  --ranks P     only the ring step that makes counts of P ranks, 2..256;\n"
            "                default: P = 2, 3, 5, 9, .., 129 (1 to 8 input planes)\n"
            "  --json FILE   also write the results as JSON\n"
            "signs GB/s = size x calls / time; memcpy GB/s = size x calls / time of\n"
            "memcpy(dst, src, size); traffic counts every plane read or written.\n");
}


static int vbench_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static double vbench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct vbench_bufs {
    uint64_t *planes, *vote, *out;
};

/* One round of iters calls of kind (-1 memcpy); GB/s of signs. */
static double vbench_round(int kind, const struct vbench_opts *o, const struct vbench_cfg *c,
                           const struct vbench_bufs *b)
{
    size_t nwords = o->size / 8;
    double t0 = vbench_now();
    for (long i = 0; i < o->iters; i++) {
        if (kind < 0)
            memcpy(b->out, b->vote, o->size);
        else if (kind == 0)
            bitplane_add_vote(b->planes, b->planes, c->nin, c->nout, b->vote, nwords);
        else if (kind == 1)
            bitplane_majority(b->out, b->planes, c->nout, nwords, c->ranks, PRIDE_TIE_ALTERNATE,
                              0);
        else
            bitplane_add_majority(b->out, b->planes, c->nin, c->nout, b->vote, nwords, c->ranks,
                                  PRIDE_TIE_ALTERNATE, 0);
        /* keep the compiler from dropping repeated identical calls */
        __asm__ volatile("" ::: "memory");
    }
    return (double)o->size * (double)o->iters / (vbench_now() - t0) / 1e9;
}

static int vbench_measure(const struct vbench_opts *o, const struct vbench_cfg *cfg, int ncfg,
                          struct vbench_result *r)
{
    size_t nwords = o->size / 8;
    int maxp = 0;
    for (int i = 0; i < ncfg; i++)
        maxp = cfg[i].nout > maxp ? cfg[i].nout : maxp;
    /* 64-byte aligned, as the vote's own chunk buffers are */
    void *planes_p = NULL, *vote_p = NULL, *out_p = NULL;
    int st = -1;
    if (posix_memalign(&planes_p, 64, (size_t)maxp * o->size) != 0 ||
        posix_memalign(&vote_p, 64, o->size) != 0 || posix_memalign(&out_p, 64, o->size) != 0)
        goto out;
    struct vbench_bufs b = {planes_p, vote_p, out_p};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < (size_t)maxp * nwords; i++)
        b.planes[i] = (x = x * 6364136223846793005ull + 1442695040888963407ull);
    for (size_t i = 0; i < nwords; i++)
        b.vote[i] = b.out[i] = (x = x * 6364136223846793005ull + 1442695040888963407ull);
    for (int i = 0; i < ncfg; i++) {
        for (int k = 0; k < VBENCH_KINDS; k++) {
            double best = 0, best_mc = 0;
            /* round 0 of each warms caches and pages and is not counted */
            for (int round = 0; round <= o->rounds; round++) {
                double mc = vbench_round(-1, o, &cfg[i], &b);
                double g = vbench_round(k, o, &cfg[i], &b);
                if (round > 0) {
                    best_mc = mc > best_mc ? mc : best_mc;
                    best = g > best ? g : best;
                }
            }
            r->gbs[i][k] = best;
            r->memcpy_gbs[i][k] = best_mc;
        }
    }
    st = 0;
out:
    free(planes_p);
    free(vote_p);
    free(out_p);
    return st;
}

/* The portable path, in a child that fixes PRIDE_KERNELS before its first kernel call. */
static int vbench_measure_portable(const struct vbench_opts *o, const struct vbench_cfg *cfg,
                                   int ncfg, struct vbench_result *r)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        setenv("PRIDE_KERNELS", "portable", 1);
        static struct vbench_result cr;
        int ok = vbench_measure(o, cfg, ncfg, &cr) == 0 &&
                 write(fds[1], &cr, sizeof cr) == (ssize_t)sizeof cr;
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    ssize_t n = 0, got;
    while (n < (ssize_t)sizeof *r && (got = read(fds[0], (char *)r + n, sizeof *r - n)) > 0)
        n += got;
    close(fds[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        n != (ssize_t)sizeof *r)
        return -1;
    return 0;
}

/* Planes read and written per plane of signs. */
static int vbench_traffic(int kind, const struct vbench_cfg *c)
{
    if (kind == 0)
        return c->nin + 1 + c->nout;
    if (kind == 1)
        return c->nout + 1;
    return c->nin + 2;
}

static void vbench_row(const char *path, int kind, const struct vbench_cfg *c, double gbs,
                       double mc)
{
    char planes[16];
    if (kind == 1)
        snprintf(planes, sizeof planes, "%d", c->nout);
    else
        snprintf(planes, sizeof planes, "%d->%d", c->nin, c->nout);
    int t = vbench_traffic(kind, c);
    printf("%-9s %5d %-6s %-9s %9.2f %9.2f %7.0f%% %9.2f %7.0f%%\n", kind_names[kind], c->ranks,
           planes, path, gbs, mc, 100 * gbs / mc, gbs * t, 100 * gbs * t / (2 * mc));
}

static int vbench_json(const char *file, const struct vbench_opts *o, const char *isa,
                       const struct vbench_cfg *cfg, int ncfg, const struct vbench_result *port,
                       const struct vbench_result *disp)
{
    FILE *f = fopen(file, "w");
    if (!f) {
        fprintf(stderr, "pride-vbench: --json %s: %s\n", file, strerror(errno));
        return -1;
    }
    fprintf(f, "{\"size\": %zu, \"iters\": %ld, \"rounds\": %d, \"isa\": \"%s\", \"rows\": [",
            o->size, o->iters, o->rounds, isa);
    const char *sep = "";
    for (int i = 0; i < ncfg; i++)
        for (int k = 0; k < VBENCH_KINDS; k++)
            for (int p = 0; p < 2; p++) {
                const struct vbench_result *r = p ? disp : port;
                fprintf(f,
                        "%s\n {\"kernel\": \"%s\", \"ranks\": %d, \"planes_in\": %d, "
                        "\"planes_out\": %d, \"path\": \"%s\", \"signs_gbs\": %.3f, "
                        "\"memcpy_gbs\": %.3f}",
                        sep, kind_names[k], cfg[i].ranks, cfg[i].nin, cfg[i].nout,
                        p ? isa : "portable", r->gbs[i][k], r->memcpy_gbs[i][k]);
                sep = ",";
            }
    fprintf(f, "\n]}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "pride-vbench: --json %s: write failed\n", file);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct vbench_opts o = {64 << 10, 0, 15, 0, NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            vbench_usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "pride-vbench: %s: unknown option or missing value (see --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--size")) {
            if (tool_parse_size(v, &o.size) != 0 || o.size == 0 || o.size > ((size_t)1 << 40) || o.size % 8 != 0) {
                fprintf(stderr, "pride-vbench: --size %s: want a positive multiple of 8 bytes\n",
                        v);
                return 2;
            }
        } else if (!strcmp(a, "--iters")) {
            if (vbench_parse_long(v, 1, 1L << 40, &o.iters) != 0) {
                fprintf(stderr, "pride-vbench: --iters %s: want a positive integer\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--rounds")) {
            if (vbench_parse_long(v, 1, 1000, &n) != 0) {
                fprintf(stderr, "pride-vbench: --rounds %s: want an integer in 1..1000\n", v);
                return 2;
            }
            o.rounds = (int)n;
        } else if (!strcmp(a, "--ranks")) {
            if (vbench_parse_long(v, 2, 256, &n) != 0) {
                fprintf(stderr, "pride-vbench: --ranks %s: want an integer in 2..256\n", v);
                return 2;
            }
            o.ranks = (int)n;
        } else if (!strcmp(a, "--json")) {
            o.json = v;
        } else {
            fprintf(stderr, "pride-vbench: %s: unknown option (see --help)\n", a);
            return 2;
        }
    }
    if (o.iters == 0)
        o.iters = (long)((1ull << 25) / o.size) + 1;

    struct vbench_cfg cfg[VBENCH_MAXCFG];
    int ncfg = 0;
    if (o.ranks) {
        cfg[ncfg++] = (struct vbench_cfg){o.ranks, 0, 0};
    } else {
        /* the ring step into counts of 2^(n-1)+1 ranks reads n planes, n = 1..8 */
        for (int n = 1; n <= 8; n++)
            cfg[ncfg++] = (struct vbench_cfg){n == 1 ? 2 : (1 << (n - 1)) + 1, 0, 0};
    }
    for (int i = 0; i < ncfg; i++) {
        cfg[i].nin = bitplane_planes(cfg[i].ranks - 1);
        cfg[i].nout = bitplane_planes(cfg[i].ranks);
    }

    static struct vbench_result port, disp;
    if (vbench_measure_portable(&o, cfg, ncfg, &port) != 0) {
        fprintf(stderr, "pride-vbench: the portable measurement failed (out of memory?)\n");
        return 1;
    }
    if (vbench_measure(&o, cfg, ncfg, &disp) != 0) {
        fprintf(stderr, "pride-vbench: out of memory for %zu-byte buffers\n", o.size);
        return 1;
    }
    const char *isa = bitplane_isa();
    printf("# %zu bytes of signs per call (%zu elements), %ld calls per round, best of %d "
           "rounds, memcpy rounds interleaved\n",
           o.size, o.size * 8, o.iters, o.rounds);
    printf("# signs GB/s: sign bytes per second; memcpy GB/s: memcpy of as many bytes;\n"
           "# traffic: every plane read or written (memcpy: read + write = 2 x size)\n");
    printf("%-9s %5s %-6s %-9s %9s %9s %8s %9s %8s\n", "kernel", "ranks", "planes", "path",
           "signsGB/s", "memcpy", "%memcpy", "traffic", "%memcpy");
    for (int k = 0; k < VBENCH_KINDS; k++)
        for (int i = 0; i < ncfg; i++) {
            vbench_row("portable", k, &cfg[i], port.gbs[i][k], port.memcpy_gbs[i][k]);
            vbench_row(isa, k, &cfg[i], disp.gbs[i][k], disp.memcpy_gbs[i][k]);
        }
    if (o.json && vbench_json(o.json, &o, isa, cfg, ncfg, &port, &disp) != 0)
        return 1;
    return 0;
}
