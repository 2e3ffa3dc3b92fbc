/*
 * The matrix products of pride-train: C = A'B' or C += A'B' in float32, for A and B
 * given by strides so that either may be a transpose without being copied.
 */
#ifndef PRIDE_TRAIN_GEMM_H
#define PRIDE_TRAIN_GEMM_H

#include <stddef.h>

struct gemm;

/* A product engine with its packing buffers (allocated once, reused by every call).
   isa: NULL for the best kernel this CPU runs, or "avx512", "avx2", "generic" to
   force one; NULL is returned when that kernel cannot run here or memory is short. */
struct gemm *gemm_create(const char *isa);
void gemm_destroy(struct gemm *g);
/* The kernel in use: "avx512", "avx2" or "generic". */
const char *gemm_isa(const struct gemm *g);

/* C[M x N] (row-major, row stride ldc) = A'B', or += A'B' when accumulate, with
   A'[i][k] = a[i * ars + k * acs] (M x K) and B'[k][j] = b[k * brs + j * bcs] (K x N). */
void gemm_run(struct gemm *g, size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs,
              const float *b, size_t brs, size_t bcs, float *c, size_t ldc, int accumulate);

#endif
