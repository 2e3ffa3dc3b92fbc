/*
 * Inside the reduction kernels: the code paths and entry points that name the path.
 *
 * Every kernel exists once per path: portable C (plain loops GCC vectorizes for the
 * baseline ISA), AVX2 + F16C, and AVX-512 (F, BW, VL, DQ). reduce_apply() and friends
 * use the path chosen once per process (the best the CPU runs, or PRIDE_KERNELS =
 * portable | avx2 | avx512). All paths give bit-identical results; the *_path entry
 * points below let tests hold each path to the portable one and let pride-kbench
 * compare them. The kernel tables and the x86 intrinsic kernels are shared between
 * reduce_kernels.c and reduce_kernels_x86.c only.
 */
#ifndef PRIDE_REDUCE_KERNELS_IMPL_H
#define PRIDE_REDUCE_KERNELS_IMPL_H

#include <stddef.h>

#include "reduce_kernels.h"

typedef enum {
    PRIDE_KPATH_PORTABLE,
    PRIDE_KPATH_AVX2,
    PRIDE_KPATH_AVX512,
    PRIDE_KPATH_COUNT
} pride_kpath_t;

/* 1 if this CPU (and OS) can run path, else 0 (also for values that are no path). */
int pride_kpath_supported(pride_kpath_t path);
/* The path reduce_apply() uses in this process (PRIDE_KERNELS honoured). */
pride_kpath_t pride_kpath_active(void);
/* "portable", "avx2", "avx512", or "unknown". */
const char *pride_kpath_name(pride_kpath_t path);

/* reduce_apply3 / pride_avg_finish on a named path. PRIDE_OK; PRIDE_ERR_INVALID for
 * what pride_reduce_check refuses, a negative nranks or NULL buffers with count > 0
 * (AVG finish: also an integer dtype); PRIDE_ERR_UNSUPPORTED if the CPU lacks path. */
int reduce_apply3_path(pride_kpath_t path, void *out, const void *a, const void *b,
                       size_t count, pride_dtype_t dt, pride_op_t op);
int pride_avg_finish_path(pride_kpath_t path, void *buf, size_t count, pride_dtype_t dt,
                          int nranks);

/* Kernel signatures: out[i] = a[i] op b[i] (out may alias a or b); buf[i] /= nranks. */
typedef void (*pride_kernel_fn)(void *out, const void *a, const void *b, size_t n);
typedef void (*pride_avg_fn)(void *buf, size_t n, int nranks);

/* float16 and bfloat16 SUM/PROD/AVG written with intrinsics (reduce_kernels_x86.c):
 * GCC cannot vectorize the portable float16 conversions, and vectorizes bfloat16's
 * widening and narrowing poorly. */
#if defined(__x86_64__) || defined(__i386__)
#define PRIDE_KERNELS16_DECLARE(type, path)                                              \
    void pride_##type##_sum_##path(void *out, const void *a, const void *b, size_t n);   \
    void pride_##type##_prod_##path(void *out, const void *a, const void *b, size_t n);  \
    void pride_##type##_avg_##path(void *buf, size_t n, int nranks);
PRIDE_KERNELS16_DECLARE(f16, avx2)
PRIDE_KERNELS16_DECLARE(bf16, avx2)
PRIDE_KERNELS16_DECLARE(f16, avx512)
PRIDE_KERNELS16_DECLARE(bf16, avx512)
#endif

#endif
