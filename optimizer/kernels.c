/*
 * The element-wise passes of the Lion family, once per CPU path: the one-process rule
 * (also Global Lion's, on the averaged gradient), pack the signs of the Lion direction
 * while advancing the momentum, apply voted signs or summed levels to the weights, and
 * the two passes of the l1 quantizer (mean |c|, then levels fused with the momentum
 * update).
 *
 * The one idea: every rank must end a step with bit-identical weights, so a path may
 * change how many elements an instruction handles but never the arithmetic: each
 * element sees the same IEEE multiplies, adds and compares in the same order as the
 * portable loop (the library is built without floating-point contraction), and the
 * one reduction, sum |c| in double, has a fixed shape on every path (16 lanes, lane
 * j summing elements 16i + j in order, the lanes added in a fixed tree). The AVX-512
 * path is used where pride_kpath_active() says so (PRIDE_KERNELS honoured); the AVX2
 * path runs the portable loops.
 */
#include <math.h>
#include <string.h>

#include "optim.h"
#include "reduce_kernels_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OPTIM_KERNELS_X86 1
#endif

/* ---- portable ------------------------------------------------------------------ */

static inline float sign0(float c)
{
    return (float)((c > 0) - (c < 0));
}

/* Decoupled decay first, then the sign of the interpolation of the old momentum, then
   the momentum. */
static void rule_portable(float *restrict x, float *restrict m, const float *restrict g, size_t n,
                          float lr, float wd, float b1, float b2)
{
    const float decay = 1.0f - lr * wd;
    for (size_t i = 0; i < n; i++) {
        float c = b1 * m[i] + (1.0f - b1) * g[i];
        x[i] = x[i] * decay;
        x[i] = x[i] - lr * sign0(c);
        m[i] = b2 * m[i] + (1.0f - b2) * g[i];
    }
}

/* Both walk the range one 64-bit word of signs at a time (the first and last word may
   be partial when the range does not start or end on a multiple of 64). */
static void pack_portable(float *restrict m, const float *restrict g, uint64_t *restrict bits,
                          size_t off, size_t count, float b1, float b2)
{
    for (size_t e = off, end = off + count; e < end;) {
        size_t lo = e % 64, hi = end - e < 64 - lo ? lo + (end - e) : 64;
        uint64_t word = 0;
        for (size_t b = lo; b < hi; b++, e++) {
            float c = b1 * m[e] + (1.0f - b1) * g[e];
            word |= (uint64_t)(c > 0) << b;
            m[e] = b2 * m[e] + (1.0f - b2) * g[e];
        }
        bits[(e - 1) / 64] |= word;
    }
}

static void apply_bits_portable(float *restrict x, const uint64_t *restrict bits, size_t off,
                                size_t count, float lr, float wd)
{
    for (size_t e = off, end = off + count; e < end;) {
        size_t lo = e % 64, hi = end - e < 64 - lo ? lo + (end - e) : 64;
        uint64_t word = bits[e / 64];
        for (size_t b = lo; b < hi; b++, e++) {
            float d = (word >> b & 1) ? 1.0f : -1.0f;
            x[e] = x[e] - lr * (d + wd * x[e]);
        }
    }
}

#define L1_LANES 16

static double lanes_total(const double *part)
{
    double s8[8], s4[4];
    for (int j = 0; j < 8; j++)
        s8[j] = part[j] + part[j + 8];
    for (int j = 0; j < 4; j++)
        s4[j] = s8[j] + s8[j + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static void abs_sum_tail(const float *m, const float *g, size_t from, size_t n, float b1,
                         double *part)
{
    for (size_t i = from; i < n; i++) {
        float c = b1 * m[i] + (1.0f - b1) * g[i];
        if (isfinite(c))
            part[i % L1_LANES] += fabs((double)c);
    }
}

static double abs_sum_portable(const float *m, const float *g, size_t n, float b1)
{
    double part[L1_LANES] = {0};
    abs_sum_tail(m, g, 0, n, b1, part);
    return lanes_total(part);
}

static int8_t level(float c, float mean, float half, int s)
{
    float v = c / mean * half; /* c / mean first: exact when c is a multiple of it */
    if (!isfinite(c) || v != v)
        return 0;
    if (v >= (float)s)
        return (int8_t)s;
    if (v <= -(float)s)
        return (int8_t)-s;
    /* round half away from zero: |v| < s <= 127, so the cast is exact */
    return (int8_t)(int)(v + (v >= 0 ? 0.5f : -0.5f));
}

static void quantize_portable(float *restrict m, const float *restrict g, size_t n, float b1,
                              float b2, int advance, float mean, float half, int s,
                              int8_t *restrict q)
{
    for (size_t i = 0; i < n; i++) {
        float c = b1 * m[i] + (1.0f - b1) * g[i];
        q[i] = level(c, mean, half, s);
        if (advance)
            m[i] = b2 * m[i] + (1.0f - b2) * g[i];
    }
}

static void apply_levels_portable(float *restrict x, const int8_t *restrict q, size_t n, float lr,
                                  float wd)
{
    for (size_t i = 0; i < n; i++) {
        float d = (float)((q[i] > 0) - (q[i] < 0));
        x[i] = x[i] - lr * (d + wd * x[i]);
    }
}

static const struct optim_kernels kernels_portable = {
    .rule = rule_portable,
    .pack = pack_portable,
    .apply_bits = apply_bits_portable,
    .abs_sum = abs_sum_portable,
    .quantize = quantize_portable,
    .apply_levels = apply_levels_portable,
};

/* ---- AVX-512: 16 elements per instruction, signs straight into mask registers ---- */

#ifdef OPTIM_KERNELS_X86
#define AVX512 __attribute__((target("avx512f")))

/* c = b1 * m + (1 - b1) * g, as the portable loop computes it. */
AVX512 static inline __m512 lion_c(__m512 m, __m512 g, __m512 b1, __m512 nb1)
{
    return _mm512_add_ps(_mm512_mul_ps(b1, m), _mm512_mul_ps(nb1, g));
}

AVX512 static void rule_avx512(float *restrict x, float *restrict m, const float *restrict g,
                               size_t n, float lr, float wd, float b1, float b2)
{
    const float decay = 1.0f - lr * wd;
    const __m512 vb1 = _mm512_set1_ps(b1), vnb1 = _mm512_set1_ps(1.0f - b1);
    const __m512 vb2 = _mm512_set1_ps(b2), vnb2 = _mm512_set1_ps(1.0f - b2);
    const __m512 vdecay = _mm512_set1_ps(decay), vlr = _mm512_set1_ps(lr);
    const __m512 zero = _mm512_setzero_ps();
    const __m512 plus = _mm512_set1_ps(1.0f), minus = _mm512_set1_ps(-1.0f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 mv = _mm512_loadu_ps(m + i), gv = _mm512_loadu_ps(g + i);
        __m512 c = lion_c(mv, gv, vb1, vnb1);
        __mmask16 gt = _mm512_cmp_ps_mask(c, zero, _CMP_GT_OQ);
        __mmask16 lt = _mm512_cmp_ps_mask(c, zero, _CMP_LT_OQ);
        __m512 d = _mm512_mask_mov_ps(_mm512_maskz_mov_ps(lt, minus), gt, plus);
        __m512 xv = _mm512_mul_ps(_mm512_loadu_ps(x + i), vdecay);
        _mm512_storeu_ps(x + i, _mm512_sub_ps(xv, _mm512_mul_ps(vlr, d)));
        _mm512_storeu_ps(m + i, _mm512_add_ps(_mm512_mul_ps(vb2, mv), _mm512_mul_ps(vnb2, gv)));
    }
    rule_portable(x + i, m + i, g + i, n - i, lr, wd, b1, b2);
}

AVX512 static void pack_avx512(float *restrict m, const float *restrict g, uint64_t *restrict bits,
                               size_t off, size_t count, float b1, float b2)
{
    size_t e = off, end = off + count;
    size_t head = (64 - e % 64) % 64;
    if (head > count)
        head = count;
    pack_portable(m, g, bits, e, head, b1, b2);
    e += head;
    const __m512 vb1 = _mm512_set1_ps(b1), vnb1 = _mm512_set1_ps(1.0f - b1);
    const __m512 vb2 = _mm512_set1_ps(b2), vnb2 = _mm512_set1_ps(1.0f - b2);
    const __m512 zero = _mm512_setzero_ps();
    for (; e + 64 <= end; e += 64) {
        uint64_t word = 0;
        for (int p = 0; p < 4; p++) {
            __m512 mv = _mm512_loadu_ps(m + e + 16 * p), gv = _mm512_loadu_ps(g + e + 16 * p);
            __mmask16 pos = _mm512_cmp_ps_mask(lion_c(mv, gv, vb1, vnb1), zero, _CMP_GT_OQ);
            word |= (uint64_t)pos << (16 * p);
            _mm512_storeu_ps(m + e + 16 * p,
                             _mm512_add_ps(_mm512_mul_ps(vb2, mv), _mm512_mul_ps(vnb2, gv)));
        }
        bits[e / 64] |= word;
    }
    if (e < end)
        pack_portable(m, g, bits, e, end - e, b1, b2);
}

/* x - lr * (d + wd * x), as the portable loop computes it. */
AVX512 static inline __m512 lion_decay_step(__m512 x, __m512 d, __m512 lr, __m512 wd)
{
    return _mm512_sub_ps(x, _mm512_mul_ps(lr, _mm512_add_ps(d, _mm512_mul_ps(wd, x))));
}

AVX512 static void apply_bits_avx512(float *restrict x, const uint64_t *restrict bits, size_t off,
                                     size_t count, float lr, float wd)
{
    size_t e = off, end = off + count;
    size_t head = (64 - e % 64) % 64;
    if (head > count)
        head = count;
    apply_bits_portable(x, bits, e, head, lr, wd);
    e += head;
    const __m512 vlr = _mm512_set1_ps(lr), vwd = _mm512_set1_ps(wd);
    const __m512 plus = _mm512_set1_ps(1.0f), minus = _mm512_set1_ps(-1.0f);
    for (; e + 64 <= end; e += 64) {
        uint64_t word = bits[e / 64];
        for (int p = 0; p < 4; p++) {
            __m512 d = _mm512_mask_blend_ps((__mmask16)(word >> (16 * p)), minus, plus);
            float *xp = x + e + 16 * p;
            _mm512_storeu_ps(xp, lion_decay_step(_mm512_loadu_ps(xp), d, vlr, vwd));
        }
    }
    if (e < end)
        apply_bits_portable(x, bits, e, end - e, lr, wd);
}

/* |c| of finite c, lanes 0-7 of c into lo and 8-15 into hi (the portable lane shape). */
AVX512 static double abs_sum_avx512(const float *m, const float *g, size_t n, float b1)
{
    const __m512 vb1 = _mm512_set1_ps(b1), vnb1 = _mm512_set1_ps(1.0f - b1);
    const __m512 zero = _mm512_setzero_ps();
    const __m512i absmask = _mm512_set1_epi64(0x7fffffffffffffffLL);
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    size_t i = 0;
    for (; i + L1_LANES <= n; i += L1_LANES) {
        __m512 c = lion_c(_mm512_loadu_ps(m + i), _mm512_loadu_ps(g + i), vb1, vnb1);
        __mmask16 fin = _mm512_cmp_ps_mask(_mm512_sub_ps(c, c), zero, _CMP_EQ_OQ);
        __m512d clo = _mm512_cvtps_pd(_mm512_castps512_ps256(c));
        __m512d chi =
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(c), 1)));
        clo = _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(clo), absmask));
        chi = _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(chi), absmask));
        lo = _mm512_mask_add_pd(lo, (__mmask8)fin, lo, clo);
        hi = _mm512_mask_add_pd(hi, (__mmask8)(fin >> 8), hi, chi);
    }
    double part[L1_LANES];
    _mm512_storeu_pd(part, lo);
    _mm512_storeu_pd(part + 8, hi);
    abs_sum_tail(m, g, i, n, b1, part);
    return lanes_total(part);
}

AVX512 static void quantize_avx512(float *restrict m, const float *restrict g, size_t n, float b1,
                                   float b2, int advance, float mean, float half, int s,
                                   int8_t *restrict q)
{
    const __m512 vb1 = _mm512_set1_ps(b1), vnb1 = _mm512_set1_ps(1.0f - b1);
    const __m512 vb2 = _mm512_set1_ps(b2), vnb2 = _mm512_set1_ps(1.0f - b2);
    const __m512 vmean = _mm512_set1_ps(mean), vhalf = _mm512_set1_ps(half);
    const __m512 top = _mm512_set1_ps((float)s), ntop = _mm512_set1_ps(-(float)s);
    const __m512 zero = _mm512_setzero_ps();
    const __m512 up = _mm512_set1_ps(0.5f), down = _mm512_set1_ps(-0.5f);
    const __m512i vs = _mm512_set1_epi32(s), vns = _mm512_set1_epi32(-s);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 mv = _mm512_loadu_ps(m + i), gv = _mm512_loadu_ps(g + i);
        __m512 c = lion_c(mv, gv, vb1, vnb1);
        __m512 v = _mm512_mul_ps(_mm512_div_ps(c, vmean), vhalf);
        __mmask16 ok = _mm512_cmp_ps_mask(_mm512_sub_ps(c, c), zero, _CMP_EQ_OQ) &
                       _mm512_cmp_ps_mask(v, v, _CMP_EQ_OQ);
        __mmask16 ge = _mm512_cmp_ps_mask(v, top, _CMP_GE_OQ);
        __mmask16 le = _mm512_cmp_ps_mask(v, ntop, _CMP_LE_OQ);
        __mmask16 nonneg = _mm512_cmp_ps_mask(v, zero, _CMP_GE_OQ);
        __m512 r = _mm512_add_ps(v, _mm512_mask_blend_ps(nonneg, down, up));
        __m512i qi = _mm512_cvttps_epi32(r);
        qi = _mm512_mask_mov_epi32(qi, ge, vs);
        qi = _mm512_mask_mov_epi32(qi, le, vns);
        qi = _mm512_maskz_mov_epi32(ok, qi);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(qi));
        if (advance)
            _mm512_storeu_ps(m + i, _mm512_add_ps(_mm512_mul_ps(vb2, mv), _mm512_mul_ps(vnb2, gv)));
    }
    quantize_portable(m + i, g + i, n - i, b1, b2, advance, mean, half, s, q + i);
}

AVX512 static void apply_levels_avx512(float *restrict x, const int8_t *restrict q, size_t n,
                                       float lr, float wd)
{
    const __m512 vlr = _mm512_set1_ps(lr), vwd = _mm512_set1_ps(wd);
    const __m512 plus = _mm512_set1_ps(1.0f), minus = _mm512_set1_ps(-1.0f);
    const __m512i zero = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i qi = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + i)));
        __mmask16 gt = _mm512_cmpgt_epi32_mask(qi, zero), lt = _mm512_cmplt_epi32_mask(qi, zero);
        __m512 d = _mm512_mask_mov_ps(_mm512_maskz_mov_ps(lt, minus), gt, plus);
        _mm512_storeu_ps(x + i, lion_decay_step(_mm512_loadu_ps(x + i), d, vlr, vwd));
    }
    apply_levels_portable(x + i, q + i, n - i, lr, wd);
}

static const struct optim_kernels kernels_avx512 = {
    .rule = rule_avx512,
    .pack = pack_avx512,
    .apply_bits = apply_bits_avx512,
    .abs_sum = abs_sum_avx512,
    .quantize = quantize_avx512,
    .apply_levels = apply_levels_avx512,
};
#endif

const struct optim_kernels *optim_kernels_path(int path)
{
    if (!pride_kpath_supported((pride_kpath_t)path))
        return NULL;
#ifdef OPTIM_KERNELS_X86
    if (path == PRIDE_KPATH_AVX512)
        return &kernels_avx512;
#endif
    return &kernels_portable;
}

const struct optim_kernels *optim_kernels(void)
{
    return optim_kernels_path(pride_kpath_active());
}
