/*
 * pride-vbench: how fast the vote's bit-plane kernels run on this machine, beside
 * memcpy on the same buffer size.
 *
 * Throughput is counted in bytes of sign input: one packed sign vector of --size
 * bytes (8·size elements) goes through the plane adder (adding one rank's vote to
 * counts of --ranks − 1 contributions, in place, as the ring's last step does) or
 * through the majority compare (counts of --ranks contributions to one bit). The
 * ring keeps a chunk's planes in cache while it adds, so the default size is one
 * chunk's plane (64 KiB); larger sizes show the memory-bound regime.
 *
 * The portable path is measured in a forked child with PRIDE_KERNELS=portable
 * (the kernel path is fixed per process on first use); the dispatched path in the
 * parent.
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

struct vbench_opts {
    size_t size;   /* bytes of sign input per call */
    long iters;    /* calls per timed round */
    int ranks;     /* contributions counted */
    const char *json;
};

struct vbench_result {
    double add_gbs, majority_gbs;
};

static void vbench_usage(FILE *f)
{
    fprintf(f,
            "usage: pride-vbench [--size BYTES] [--iters N] [--ranks P] [--json FILE]\n"
            "Measure the bit-plane vote kernels (plane adder, majority compare) in GB/s of\n"
            "packed sign input, portable and dispatched, beside memcpy of the same size.\n"
            "  --size BYTES  sign input per call, suffixes K M G (default 64K)\n"
            "  --iters N     calls per timed round, best of 5 rounds (default: about 1 GB)\n"
            "  --ranks P     ranks whose votes are counted, 2..256 (default 8)\n"
            "  --json FILE   also write the results as JSON\n");
}

static int vbench_parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -1;
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1ull << 10;
    else if (*end == 'M' || *end == 'm')
        mul = 1ull << 20;
    else if (*end == 'G' || *end == 'g')
        mul = 1ull << 30;
    if (mul != 1)
        end++;
    if (*end != '\0' || v == 0 || v > (1ull << 40) / mul)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

static double vbench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best GB/s over 5 rounds of iters calls of kind (0 memcpy, 1 adder, 2 majority). */
static double vbench_time(int kind, const struct vbench_opts *o, uint64_t *planes, uint64_t *vote,
                          uint64_t *out)
{
    size_t nwords = o->size / 8;
    int nin = bitplane_planes(o->ranks - 1), nout = bitplane_planes(o->ranks);
    double best = 0;
    for (int round = 0; round < 6; round++) {
        double t0 = vbench_now();
        for (long i = 0; i < o->iters; i++) {
            if (kind == 0)
                memcpy(out, vote, o->size);
            else if (kind == 1)
                bitplane_add_vote(planes, planes, nin, nout, vote, nwords);
            else
                bitplane_majority(out, planes, nout, nwords, o->ranks, PRIDE_TIE_ALTERNATE, 0);
            /* keep the compiler from dropping repeated identical calls */
            __asm__ volatile("" ::: "memory");
        }
        double gbs = (double)o->size * (double)o->iters / (vbench_now() - t0) / 1e9;
        if (round > 0 && gbs > best) /* round 0 warms caches and pages */
            best = gbs;
    }
    return best;
}

static int vbench_measure(const struct vbench_opts *o, double *memcpy_gbs,
                          struct vbench_result *r)
{
    size_t nwords = o->size / 8;
    int nout = bitplane_planes(o->ranks);
    /* 64-byte aligned, as the vote's own chunk buffers are */
    void *planes_p = NULL, *vote_p = NULL, *out_p = NULL;
    int st = -1;
    if (posix_memalign(&planes_p, 64, (size_t)nout * nwords * 8) != 0 ||
        posix_memalign(&vote_p, 64, o->size) != 0 || posix_memalign(&out_p, 64, o->size) != 0)
        goto out;
    uint64_t *planes = planes_p, *vote = vote_p, *out = out_p;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < (size_t)nout * nwords; i++)
        planes[i] = (x = x * 6364136223846793005ull + 1442695040888963407ull);
    for (size_t i = 0; i < nwords; i++)
        vote[i] = (x = x * 6364136223846793005ull + 1442695040888963407ull);
    if (memcpy_gbs)
        *memcpy_gbs = vbench_time(0, o, planes, vote, out);
    r->add_gbs = vbench_time(1, o, planes, vote, out);
    r->majority_gbs = vbench_time(2, o, planes, vote, out);
    st = 0;
out:
    free(planes_p);
    free(vote_p);
    free(out_p);
    return st;
}

/* The portable path, in a child that fixes PRIDE_KERNELS before its first kernel call. */
static int vbench_measure_portable(const struct vbench_opts *o, struct vbench_result *r)
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
        struct vbench_result cr;
        int ok = vbench_measure(o, NULL, &cr) == 0 &&
                 write(fds[1], &cr, sizeof cr) == (ssize_t)sizeof cr;
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], r, sizeof *r);
    close(fds[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        n != (ssize_t)sizeof *r)
        return -1;
    return 0;
}

static void vbench_row(const char *kernel, const char *path, double gbs, int traffic,
                       double memcpy_gbs)
{
    printf("%-10s %-9s %10.2f %7.0f%% %12.2f %7.0f%%\n", kernel, path, gbs, 100 * gbs / memcpy_gbs,
           gbs * traffic, 100 * gbs * traffic / (2 * memcpy_gbs));
}

int main(int argc, char **argv)
{
    struct vbench_opts o = {64 << 10, 0, 8, NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
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
            if (vbench_parse_size(v, &o.size) != 0 || o.size % 8 != 0) {
                fprintf(stderr, "pride-vbench: --size %s: want a positive multiple of 8 bytes\n",
                        v);
                return 2;
            }
        } else if (!strcmp(a, "--iters")) {
            char *end;
            errno = 0;
            o.iters = strtol(v, &end, 10);
            if (errno || *end || o.iters <= 0) {
                fprintf(stderr, "pride-vbench: --iters %s: want a positive integer\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--ranks")) {
            char *end;
            errno = 0;
            long p = strtol(v, &end, 10);
            if (errno || *end || p < 2 || p > 256) {
                fprintf(stderr, "pride-vbench: --ranks %s: want an integer in 2..256\n", v);
                return 2;
            }
            o.ranks = (int)p;
        } else if (!strcmp(a, "--json")) {
            o.json = v;
        } else {
            fprintf(stderr, "pride-vbench: %s: unknown option (see --help)\n", a);
            return 2;
        }
    }
    if (o.iters == 0)
        o.iters = (long)((1ull << 30) / o.size) + 1;

    struct vbench_result port, disp;
    double mc;
    if (vbench_measure_portable(&o, &port) != 0) {
        fprintf(stderr, "pride-vbench: the portable measurement failed (out of memory?)\n");
        return 1;
    }
    if (vbench_measure(&o, &mc, &disp) != 0) {
        fprintf(stderr, "pride-vbench: out of memory for %zu-byte buffers\n", o.size);
        return 1;
    }
    const char *isa = bitplane_isa();
    int nin = bitplane_planes(o.ranks - 1), nout = bitplane_planes(o.ranks);
    printf("# size %zu bytes of signs (%zu elements), %d ranks: adder %d->%d planes in place,"
           " majority of %d planes; %ld iters, best of 5\n",
           o.size, o.size * 8, o.ranks, nin, nout, nout, o.iters);
    /* memory traffic per byte of signs: memcpy reads and writes it once; the adder reads
       nin planes and the vote and writes nout planes; the compare reads nout, writes 1 */
    printf("%-10s %-9s %10s %8s %12s %8s\n", "kernel", "path", "signs GB/s", "%memcpy",
           "traffic GB/s", "%memcpy");
    vbench_row("memcpy", "libc", mc, 2, mc);
    vbench_row("add", "portable", port.add_gbs, nin + 1 + nout, mc);
    vbench_row("add", isa, disp.add_gbs, nin + 1 + nout, mc);
    vbench_row("majority", "portable", port.majority_gbs, nout + 1, mc);
    vbench_row("majority", isa, disp.majority_gbs, nout + 1, mc);
    if (o.json) {
        FILE *f = fopen(o.json, "w");
        if (!f) {
            fprintf(stderr, "pride-vbench: --json %s: %s\n", o.json, strerror(errno));
            return 1;
        }
        fprintf(f,
                "{\"size\": %zu, \"ranks\": %d, \"iters\": %ld, \"isa\": \"%s\", "
                "\"memcpy_gbs\": %.3f, \"add_portable_gbs\": %.3f, \"add_dispatched_gbs\": %.3f, "
                "\"majority_portable_gbs\": %.3f, \"majority_dispatched_gbs\": %.3f}\n",
                o.size, o.ranks, o.iters, isa, mc, port.add_gbs, disp.add_gbs, port.majority_gbs,
                disp.majority_gbs);
        if (fclose(f) != 0) {
            fprintf(stderr, "pride-vbench: --json %s: write failed\n", o.json);
            return 1;
        }
    }
    return 0;
}
