/*
 * pride-kbench: throughput of the reduction kernels for every dtype and op, on every
 * code path this CPU runs, beside memcpy on the same buffers.
 *
 * The one idea: a reduction is a streaming pass, so its yardstick is memcpy. Each
 * kernel runs in place (inout op= in), which reads two buffers and writes one:
 * reduce GB/s counts 3 x size bytes per call; memcpy GB/s counts 2 x size (one read,
 * one write). GB = 1e9 bytes. A result is the best of three timed runs of --iters
 * calls each, after one untimed call. The second input holds +-1 (and the first
 * moderate values), so repeated SUM/PROD stay away from overflow and subnormals,
 * which would time microcode assists instead of the kernel.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../collectives/reduce_kernels_impl.h"
#include "pride/pride.h"
#include "tool_size.h"

#define NDTYPES (PRIDE_FLOAT64 + 1)
#define NOPS (PRIDE_AVG + 1)
#define RUNS 3

static const char *dtype_names[NDTYPES] = {"int8",   "uint8",   "int32",    "uint32",
                                           "int64",  "uint64",  "float16",  "bfloat16",
                                           "float32", "float64"};
static const size_t dtype_sizes[NDTYPES] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
static const char *op_names[NOPS] = {"sum", "prod", "min", "max", "avg"};

struct kbench_opts {
    size_t size;
    long iters;
    int dtype; /* -1: all */
    int op;    /* -1: all */
    const char *csv;
};

static void kbench_usage(FILE *f)
{
    fprintf(f,
            "usage: pride-kbench [--size BYTES] [--iters N] [--dtype NAME] [--op NAME]\n"
            "                    [--csv FILE]\n"
            "Times the element-wise reduction kernels in place (inout op= in) on every\n"
            "code path this CPU runs (portable, avx2, avx512; * marks the one pride uses,\n"
            "PRIDE_KERNELS may change it) and memcpy on the same buffers.\n"
            "  --size BYTES  bytes per buffer (suffix k, m, g: KiB, MiB, GiB); default 1m\n"
            "  --iters N     calls per timed run (best of %d runs); default 512 MiB / size,\n"
            "                at least 3\n"
            "  --dtype NAME  only this dtype (int8 uint8 int32 uint32 int64 uint64 float16\n"
            "                bfloat16 float32 float64)\n"
            "  --op NAME     only this op (sum prod min max avg)\n"
            "  --csv FILE    also write dtype,op,path,gbps rows to FILE\n"
            "reduce GB/s = 3 x size / time (two inputs read, one output written);\n"
            "memcpy GB/s = 2 x size / time (one read, one write); GB = 1e9 bytes.\n",
            RUNS);
}


static int kbench_lookup(const char *name, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

static int kbench_parse(int argc, char **argv, struct kbench_opts *o)
{
    o->size = (size_t)1 << 20;
    o->iters = 0;
    o->dtype = -1;
    o->op = -1;
    o->csv = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            kbench_usage(stdout);
            exit(0);
        }
        if (val == NULL) {
            fprintf(stderr, "pride-kbench: unknown option or missing value: %s (try --help)\n",
                    arg);
            return -1;
        }
        i++;
        if (strcmp(arg, "--size") == 0) {
            if (tool_parse_size(val, &o->size) != 0 || o->size == 0 || o->size > ((size_t)1 << 40)) {
                fprintf(stderr, "pride-kbench: --size wants a positive byte count up to 1 TiB "
                                "(e.g. 1048576 or 64m), got '%s'\n", val);
                return -1;
            }
        } else if (strcmp(arg, "--iters") == 0) {
            char *end;
            errno = 0;
            o->iters = strtol(val, &end, 10);
            if (errno || end == val || *end != '\0' || o->iters < 1) {
                fprintf(stderr, "pride-kbench: --iters wants a positive integer, got '%s'\n",
                        val);
                return -1;
            }
        } else if (strcmp(arg, "--dtype") == 0) {
            if ((o->dtype = kbench_lookup(val, dtype_names, NDTYPES)) < 0) {
                fprintf(stderr, "pride-kbench: unknown dtype '%s' (try --help)\n", val);
                return -1;
            }
        } else if (strcmp(arg, "--op") == 0) {
            if ((o->op = kbench_lookup(val, op_names, NOPS)) < 0) {
                fprintf(stderr, "pride-kbench: unknown op '%s' (try --help)\n", val);
                return -1;
            }
        } else if (strcmp(arg, "--csv") == 0) {
            o->csv = val;
        } else {
            fprintf(stderr, "pride-kbench: unknown option %s (try --help)\n", arg);
            return -1;
        }
    }
    if (o->iters == 0) {
        o->iters = (long)(((size_t)512 << 20) / o->size);
        if (o->iters < 3)
            o->iters = 3;
    }
    return 0;
}

static double kbench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Moderate first operands, +-1 second operands, in the dtype's own encoding. */
static void kbench_fill(int dt, unsigned char *a, unsigned char *b, size_t count)
{
    uint64_t s = 0x243f6a8885a308d3u;
    for (size_t i = 0; i < count; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        float x = (float)((int)(s % 2001) - 1000) / 10.0f, y = (s >> 40) & 1 ? 1.0f : -1.0f;
        double dx = x, dy = y;
        uint16_t hx, hy;
        size_t sz = dtype_sizes[dt];
        switch (dt) {
        case PRIDE_FLOAT16:
            hx = pride_float_to_half(x);
            hy = pride_float_to_half(y);
            memcpy(a + i * sz, &hx, sz);
            memcpy(b + i * sz, &hy, sz);
            break;
        case PRIDE_BFLOAT16:
            hx = pride_float_to_bf16(x);
            hy = pride_float_to_bf16(y);
            memcpy(a + i * sz, &hx, sz);
            memcpy(b + i * sz, &hy, sz);
            break;
        case PRIDE_FLOAT32:
            memcpy(a + i * sz, &x, sz);
            memcpy(b + i * sz, &y, sz);
            break;
        case PRIDE_FLOAT64:
            memcpy(a + i * sz, &dx, sz);
            memcpy(b + i * sz, &dy, sz);
            break;
        default: /* integers: little-endian low bytes of the random word */
            memcpy(a + i * sz, &s, sz);
            memcpy(b + i * sz, (const unsigned char *)&s + 3, sz < 5 ? sz : 5);
            break;
        }
    }
}

/* Best GB/s over RUNS runs of iters calls; path < 0 times memcpy. */
static double kbench_time(int path, int dt, int op, unsigned char *a, const unsigned char *b,
                          size_t size, long iters)
{
    size_t count = size / dtype_sizes[dt];
    double best = 0, bytes = (double)(path < 0 ? 2 : 3) * (double)(count * dtype_sizes[dt]);
    for (int run = -1; run < RUNS; run++) {
        long n = run < 0 ? 1 : iters; /* run -1: one untimed call */
        double t0 = kbench_now();
        for (long k = 0; k < n; k++) {
            if (path < 0)
                memcpy(a, b, count * dtype_sizes[dt]);
            else if (reduce_apply3_path((pride_kpath_t)path, a, a, b, count, (pride_dtype_t)dt,
                                        (pride_op_t)op) != PRIDE_OK)
                return -1;
        }
        double gbps = bytes * (double)n / (kbench_now() - t0) / 1e9;
        if (run >= 0 && gbps > best)
            best = gbps;
    }
    return best;
}

int main(int argc, char **argv)
{
    struct kbench_opts o;
    unsigned char *a = NULL, *b = NULL;
    FILE *csv = NULL;
    int rc = 1, active = pride_kpath_active();
    size_t alloc;

    if (kbench_parse(argc, argv, &o) != 0)
        return 2;
    alloc = (o.size + 63) / 64 * 64;
    a = aligned_alloc(64, alloc);
    b = aligned_alloc(64, alloc);
    if (a == NULL || b == NULL) {
        fprintf(stderr, "pride-kbench: cannot allocate two buffers of %zu bytes\n", o.size);
        goto out;
    }
    if (o.csv && (csv = fopen(o.csv, "w")) == NULL) {
        fprintf(stderr, "pride-kbench: cannot write %s: %s\n", o.csv, strerror(errno));
        goto out;
    }
    if (csv)
        fprintf(csv, "dtype,op,path,gbps\n");

    printf("# pride-kbench: %zu bytes per buffer, %ld calls per run, best of %d runs\n",
           o.size, o.iters, RUNS);
    printf("# reduce GB/s = 3 x size / time (in place: 2 inputs read, 1 output written)\n");
    kbench_fill(PRIDE_UINT8, a, b, o.size);
    double mc = kbench_time(-1, PRIDE_UINT8, 0, a, b, o.size, o.iters);
    printf("# memcpy GB/s = 2 x size / time, same buffers: %.2f\n", mc);
    if (csv)
        fprintf(csv, "-,memcpy,-,%.3f\n", mc);
    printf("# * marks the path pride uses here (%s)\n", pride_kpath_name(active));
    printf("%-9s %-5s", "dtype", "op");
    for (int p = 0; p < PRIDE_KPATH_COUNT; p++)
        printf(" %10s", pride_kpath_name((pride_kpath_t)p));
    printf("\n");

    for (int dt = 0; dt < NDTYPES; dt++) {
        if (o.dtype >= 0 && dt != o.dtype)
            continue;
        if (o.size < dtype_sizes[dt])
            continue;
        for (int op = 0; op < NOPS; op++) {
            if ((o.op >= 0 && op != o.op) ||
                pride_reduce_check((pride_dtype_t)dt, (pride_op_t)op) != PRIDE_OK)
                continue;
            printf("%-9s %-5s", dtype_names[dt], op_names[op]);
            for (int p = 0; p < PRIDE_KPATH_COUNT; p++) {
                if (!pride_kpath_supported((pride_kpath_t)p)) {
                    printf(" %10s", "-");
                    continue;
                }
                kbench_fill(dt, a, b, o.size / dtype_sizes[dt]);
                double g = kbench_time(p, dt, op, a, b, o.size, o.iters);
                printf(" %9.2f%c", g, p == active ? '*' : ' ');
                if (csv)
                    fprintf(csv, "%s,%s,%s,%.3f\n", dtype_names[dt], op_names[op],
                            pride_kpath_name((pride_kpath_t)p), g);
            }
            printf("\n");
            fflush(stdout);
        }
    }
    rc = 0;
out:
    if (csv && fclose(csv) != 0 && rc == 0) {
        fprintf(stderr, "pride-kbench: writing %s failed\n", o.csv);
        rc = 1;
    }
    free(a);
    free(b);
    return rc;
}
