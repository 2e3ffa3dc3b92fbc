/*
 * pride-train's matrix product, blocked for the caches and tiled for the registers,
 * in the manner of BLIS / GotoBLAS, with no BLAS underneath.
 *
 * The one idea: a micro-kernel keeps an MR x NR tile of C in vector registers and
 * walks K, reading one MR-column of A and one NR-row of B per step, both from packed
 * panels laid out in exactly that order (so every load is contiguous and aligned,
 * whatever the strides of the caller's A and B). The loops around it choose blocks
 * that stay in cache: a KC x NC block of B (L2) is packed once and reused by every
 * MC x KC block of A; inside it a KC x NR micro-panel of B stays in L1 while the
 * micro-panels of A stream past. Edges are zero-padded in the panels and only the
 * valid part of the tile is stored.
 *
 * One shape skips the packing: when A' and B'^T both run contiguously along K (the
 * backward product dz W^T, with W read in place), packing B would transpose it element
 * by element; instead an R x Q tile of dot products is summed in vector registers
 * straight from the rows, each sum finished in a fixed order.
 *
 * The micro-kernel is written once with the compiler's vector extensions and built
 * three times: AVX-512 (16 lanes, 8 x 32 tile), AVX2 + FMA (8 lanes, 6 x 16) and a
 * generic 4-lane version for any other CPU, chosen at run time. The file is compiled
 * with -ffp-contract=fast so that acc += a * b becomes a fused multiply-add where the
 * CPU has one; results therefore depend on the kernel (as any BLAS's do), never on
 * anything else.
 */
#include "gemm.h"

#include <stdlib.h>
#include <string.h>

enum { KC = 256, NC = 512, MC_ROWS = 128 };

typedef void (*gemm_dot_fn)(size_t M, size_t N, size_t K, const float *a, size_t lda,
                            const float *b, size_t ldb, float *c, size_t ldc, int accumulate);
typedef void (*gemm_kernel_fn)(size_t kc, const float *ap, const float *bp, float *c, size_t ldc,
                               size_t m, size_t n, int accumulate);

struct gemm {
    const char *isa;
    gemm_kernel_fn kernel;
    gemm_dot_fn dot;
    size_t mr, nr, mc;
    float *ap, *bp; /* packed A block (mc x KC), packed B block (KC x NC) */
};

/* The tile is summed in registers; it is written straight to C when whole, through a
   scratch tile when it overhangs C's edge. */
#define GEMM_KERNEL(NAME, ATTR, V, VL, MR)                                                         \
    ATTR static void NAME(size_t kc, const float *restrict ap, const float *restrict bp,           \
                          float *restrict c, size_t ldc, size_t m, size_t n, int accumulate)       \
    {                                                                                              \
        V s0[MR], s1[MR];                                                                          \
        _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) s0[r] = s1[r] = (V){0};              \
        for (size_t k = 0; k < kc; k++, ap += MR, bp += 2 * VL) {                                  \
            V b0 = *(const V *)bp, b1 = *(const V *)(bp + VL);                                     \
            _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)                                  \
            {                                                                                      \
                V a = ap[r] - (V){0}; /* x - 0 is x exactly: a plain broadcast */                  \
                s0[r] += a * b0;                                                                   \
                s1[r] += a * b1;                                                                   \
            }                                                                                      \
        }                                                                                          \
        if (m == MR && n == 2 * VL) {                                                              \
            _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)                                  \
            {                                                                                      \
                V *c0 = (V *)(c + (size_t)r * ldc), *c1 = (V *)(c + (size_t)r * ldc + VL);         \
                if (accumulate) {                                                                  \
                    s0[r] += *c0;                                                                  \
                    s1[r] += *c1;                                                                  \
                }                                                                                  \
                *c0 = s0[r];                                                                       \
                *c1 = s1[r];                                                                       \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        float t[MR][2 * VL];                                                                       \
        for (int r = 0; r < MR; r++) {                                                             \
            memcpy(t[r], &s0[r], sizeof s0[r]);                                                    \
            memcpy(t[r] + VL, &s1[r], sizeof s1[r]);                                               \
        }                                                                                          \
        for (size_t r = 0; r < m; r++)                                                             \
            for (size_t j = 0; j < n; j++)                                                         \
                c[r * ldc + j] = accumulate ? c[r * ldc + j] + t[r][j] : t[r][j];                  \
    }

/* C[i][j] (+)= sum_k a[i * lda + k] * b[j * ldb + k]: R rows of A against Q rows of B
   at a time, VL values of k per instruction, lanes added pairwise at the end and the
   K % VL leftover added after them. Rows past M or N repeat the last one (computed,
   never stored) so the inner loop has no branches. */
#define GEMM_DOT(NAME, ATTR, V, VL, R, Q)                                                          \
    ATTR static void NAME(size_t M, size_t N, size_t K, const float *a, size_t lda,                \
                          const float *b, size_t ldb, float *c, size_t ldc, int accumulate)        \
    {                                                                                              \
        const size_t kv = K / VL * VL;                                                             \
        for (size_t j0 = 0; j0 < N; j0 += Q)                                                       \
            for (size_t i0 = 0; i0 < M; i0 += R) {                                                 \
                const float *ar[R], *br[Q];                                                        \
                for (int r = 0; r < R; r++)                                                        \
                    ar[r] = a + (i0 + r < M ? i0 + r : M - 1) * lda;                               \
                for (int q = 0; q < Q; q++)                                                        \
                    br[q] = b + (j0 + q < N ? j0 + q : N - 1) * ldb;                               \
                V s[R][Q];                                                                         \
                _Pragma("GCC unroll 16") for (int r = 0; r < R; r++)                               \
                    _Pragma("GCC unroll 16") for (int q = 0; q < Q; q++) s[r][q] = (V){0};         \
                for (size_t k = 0; k < kv; k += VL) {                                              \
                    V av[R], bv[Q];                                                                \
                    _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) av[r] =                   \
                        *(const V *)(ar[r] + k);                                                   \
                    _Pragma("GCC unroll 16") for (int q = 0; q < Q; q++) bv[q] =                   \
                        *(const V *)(br[q] + k);                                                   \
                    _Pragma("GCC unroll 16") for (int r = 0; r < R; r++)                           \
                        _Pragma("GCC unroll 16") for (int q = 0; q < Q; q++) s[r][q] +=            \
                        av[r] * bv[q];                                                             \
                }                                                                                  \
                for (size_t r = 0; r < R && i0 + r < M; r++)                                       \
                    for (size_t q = 0; q < Q && j0 + q < N; q++) {                                 \
                        float t[VL];                                                               \
                        memcpy(t, &s[r][q], sizeof t);                                             \
                        for (size_t w = VL / 2; w > 0; w /= 2)                                     \
                            for (size_t l = 0; l < w; l++)                                         \
                                t[l] += t[l + w];                                                  \
                        float sum = t[0];                                                          \
                        for (size_t k = kv; k < K; k++)                                            \
                            sum += ar[r][k] * br[q][k];                                            \
                        float *cp = c + (i0 + r) * ldc + j0 + q;                                   \
                        *cp = accumulate ? *cp + sum : sum;                                        \
                    }                                                                              \
            }                                                                                      \
    }

/* Unaligned and alias-safe: C rows need not be aligned; the packed panels are. */
typedef float gemm_v4 __attribute__((vector_size(16), aligned(4), may_alias));
GEMM_KERNEL(kernel_generic, , gemm_v4, 4, 6)
GEMM_DOT(dot_generic, , gemm_v4, 4, 2, 4)

#if defined(__x86_64__) || defined(__i386__)
#define GEMM_HAVE_X86 1
typedef float gemm_v8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef float gemm_v16 __attribute__((vector_size(64), aligned(4), may_alias));
GEMM_KERNEL(kernel_avx2, __attribute__((target("avx2,fma"))), gemm_v8, 8, 6)
GEMM_KERNEL(kernel_avx512, __attribute__((target("avx512f"))), gemm_v16, 16, 8)
GEMM_DOT(dot_avx2, __attribute__((target("avx2,fma"))), gemm_v8, 8, 2, 4)
GEMM_DOT(dot_avx512, __attribute__((target("avx512f"))), gemm_v16, 16, 4, 4)
#endif

/* Pack rows [i0, i0+mc) x columns [k0, k0+kc) of A' as micro-panels of MR rows, each
   stored k-major (MR values per k), the last one zero-padded. */
static void pack_a(const struct gemm *g, const float *a, size_t ars, size_t acs, size_t i0,
                   size_t mc, size_t k0, size_t kc)
{
    const size_t mr = g->mr;
    float *dst = g->ap;
    for (size_t ir = 0; ir < mc; ir += mr, dst += mr * kc) {
        size_t rows = mc - ir < mr ? mc - ir : mr;
        if (rows < mr)
            memset(dst, 0, mr * kc * sizeof *dst);
        const float *src = a + (i0 + ir) * ars + k0 * acs;
        if (acs == 1) /* rows of A' contiguous: read along k */
            for (size_t r = 0; r < rows; r++)
                for (size_t k = 0; k < kc; k++)
                    dst[k * mr + r] = src[r * ars + k];
        else
            for (size_t k = 0; k < kc; k++)
                for (size_t r = 0; r < rows; r++)
                    dst[k * mr + r] = src[r * ars + k * acs];
    }
}

/* Pack rows [k0, k0+kc) x columns [j0, j0+nc) of B' as micro-panels of NR columns,
   each stored k-major (NR values per k), the last one zero-padded. */
static void pack_b(const struct gemm *g, const float *b, size_t brs, size_t bcs, size_t k0,
                   size_t kc, size_t j0, size_t nc)
{
    const size_t nr = g->nr;
    float *dst = g->bp;
    for (size_t jr = 0; jr < nc; jr += nr, dst += nr * kc) {
        size_t cols = nc - jr < nr ? nc - jr : nr;
        if (cols < nr)
            memset(dst, 0, nr * kc * sizeof *dst);
        const float *src = b + k0 * brs + (j0 + jr) * bcs;
        if (bcs == 1)
            for (size_t k = 0; k < kc; k++)
                memcpy(dst + k * nr, src + k * brs, cols * sizeof *dst);
        else if (brs == 1) /* a transpose: columns of B' contiguous, read along k */
            for (size_t j = 0; j < cols; j++)
                for (size_t k = 0; k < kc; k++)
                    dst[k * nr + j] = src[j * bcs + k];
        else
            for (size_t k = 0; k < kc; k++)
                for (size_t j = 0; j < cols; j++)
                    dst[k * nr + j] = src[k * brs + j * bcs];
    }
}

void gemm_run(struct gemm *g, size_t M, size_t N, size_t K, const float *a, size_t ars, size_t acs,
              const float *b, size_t brs, size_t bcs, float *c, size_t ldc, int accumulate)
{
    if (M == 0 || N == 0)
        return;
    if (K == 0) {
        if (!accumulate)
            for (size_t i = 0; i < M; i++)
                memset(c + i * ldc, 0, N * sizeof *c);
        return;
    }
    if (acs == 1 && brs == 1 && bcs != 1) {
        g->dot(M, N, K, a, ars, b, bcs, c, ldc, accumulate);
        return;
    }
    const size_t mr = g->mr, nr = g->nr;
    for (size_t jc = 0; jc < N; jc += NC) {
        size_t nc = N - jc < NC ? N - jc : NC;
        for (size_t pc = 0; pc < K; pc += KC) {
            size_t kc = K - pc < KC ? K - pc : KC;
            int acc = accumulate || pc > 0;
            pack_b(g, b, brs, bcs, pc, kc, jc, nc);
            for (size_t ic = 0; ic < M; ic += g->mc) {
                size_t mc = M - ic < g->mc ? M - ic : g->mc;
                pack_a(g, a, ars, acs, ic, mc, pc, kc);
                for (size_t jr = 0; jr < nc; jr += nr) {
                    size_t n = nc - jr < nr ? nc - jr : nr;
                    const float *bp = g->bp + jr * kc;
                    for (size_t ir = 0; ir < mc; ir += mr) {
                        size_t m = mc - ir < mr ? mc - ir : mr;
                        g->kernel(kc, g->ap + ir * kc, bp, c + (ic + ir) * ldc + jc + jr, ldc, m, n,
                                  acc);
                    }
                }
            }
        }
    }
}

struct gemm *gemm_create(const char *isa)
{
    struct gemm k = {
        .isa = "generic", .kernel = kernel_generic, .dot = dot_generic, .mr = 6, .nr = 8};
#ifdef GEMM_HAVE_X86
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f");
    int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if ((!isa && has512) || (isa && !strcmp(isa, "avx512")))
        k = (struct gemm){
            .isa = "avx512", .kernel = kernel_avx512, .dot = dot_avx512, .mr = 8, .nr = 32};
    else if ((!isa && has2) || (isa && !strcmp(isa, "avx2")))
        k = (struct gemm){.isa = "avx2", .kernel = kernel_avx2, .dot = dot_avx2, .mr = 6, .nr = 16};
    if (isa && ((!strcmp(isa, "avx512") && !has512) || (!strcmp(isa, "avx2") && !has2)))
        return NULL;
#endif
    if (isa && strcmp(isa, k.isa))
        return NULL;
    k.mc = MC_ROWS / k.mr * k.mr;
    struct gemm *g = malloc(sizeof *g);
    if (!g)
        return NULL;
    *g = k;
    g->ap = aligned_alloc(64, g->mc * KC * sizeof(float));
    g->bp = aligned_alloc(64, (NC + g->nr) * KC * sizeof(float));
    if (!g->ap || !g->bp) {
        gemm_destroy(g);
        return NULL;
    }
    return g;
}

void gemm_destroy(struct gemm *g)
{
    if (!g)
        return;
    free(g->ap);
    free(g->bp);
    free(g);
}

const char *gemm_isa(const struct gemm *g)
{
    return g->isa;
}
