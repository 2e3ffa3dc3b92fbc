/*
 * float16 and bfloat16 SUM, PROD and AVG finish for the AVX2 (+F16C) and AVX-512 paths.
 *
 * The one idea: these compute exactly the portable element rule of reduce_kernels.c
 * (widen exactly, one float32 operation, NaN to the canonical 0x7fc00000, round to
 * nearest even), only 16 or 32 elements at a time:
 *  - float16: F16C's vcvtph2ps widens exactly, and vcvtps2ph with an immediate
 *    round-to-nearest-even is the IEEE conversion (0x7fc00000 becomes 0x7e00, as in
 *    the portable code); NaN payloads never reach it;
 *  - bfloat16: widening puts the word in the top half of a float32 (unpack with zero);
 *    rounding is the integer rule x + 0x7fff + ((x >> 16) & 1), then the top half,
 *    both done on whole vectors; unpacklo/unpackhi and packus_epi32 permute within
 *    128-bit lanes in mirror image, so elements come back in their order.
 * Tails run the same vector code on a zero-padded copy. Each function carries its own
 * target attribute, so the build needs no -m flags; the caller checks the CPU.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "reduce_kernels_impl.h"

#define ATTR_AVX2 __attribute__((target("avx2,f16c")))
#define ATTR_AVX512 __attribute__((target("avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
#define QNAN_BITS 0x7fc00000
#define ROUND_EVEN (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* ---- AVX2: 16 elements as two __m256 ---------------------------------------------- */

static inline ATTR_AVX2 __m256 avx2_canon(__m256 r)
{
    __m256 qnan = _mm256_castsi256_ps(_mm256_set1_epi32(QNAN_BITS));
    return _mm256_blendv_ps(r, qnan, _mm256_cmp_ps(r, r, _CMP_UNORD_Q));
}

static inline ATTR_AVX2 void f16_load_avx2(const uint16_t *p, __m256 *lo, __m256 *hi)
{
    *lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    *hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 8)));
}

static inline ATTR_AVX2 void f16_store_avx2(uint16_t *p, __m256 lo, __m256 hi)
{
    _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(avx2_canon(lo), ROUND_EVEN));
    _mm_storeu_si128((__m128i *)(p + 8), _mm256_cvtps_ph(avx2_canon(hi), ROUND_EVEN));
}

static inline ATTR_AVX2 void bf16_load_avx2(const uint16_t *p, __m256 *lo, __m256 *hi)
{
    __m256i v = _mm256_loadu_si256((const __m256i *)p), zero = _mm256_setzero_si256();
    *lo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v));
    *hi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v));
}

static inline ATTR_AVX2 __m256i bf16_round_avx2(__m256 r)
{
    __m256i x = _mm256_castps_si256(avx2_canon(r));
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    x = _mm256_add_epi32(x, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff)));
    return _mm256_srli_epi32(x, 16);
}

static inline ATTR_AVX2 void bf16_store_avx2(uint16_t *p, __m256 lo, __m256 hi)
{
    _mm256_storeu_si256((__m256i *)p,
                        _mm256_packus_epi32(bf16_round_avx2(lo), bf16_round_avx2(hi)));
}

/* ---- AVX-512: 32 elements as two __m512 ------------------------------------------- */

static inline ATTR_AVX512 __m512 avx512_canon(__m512 r)
{
    __m512 qnan = _mm512_castsi512_ps(_mm512_set1_epi32(QNAN_BITS));
    return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q), qnan);
}

static inline ATTR_AVX512 void f16_load_avx512(const uint16_t *p, __m512 *lo, __m512 *hi)
{
    *lo = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    *hi = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 16)));
}

static inline ATTR_AVX512 void f16_store_avx512(uint16_t *p, __m512 lo, __m512 hi)
{
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtps_ph(avx512_canon(lo), ROUND_EVEN));
    _mm256_storeu_si256((__m256i *)(p + 16), _mm512_cvtps_ph(avx512_canon(hi), ROUND_EVEN));
}

static inline ATTR_AVX512 void bf16_load_avx512(const uint16_t *p, __m512 *lo, __m512 *hi)
{
    __m512i v = _mm512_loadu_si512(p), zero = _mm512_setzero_si512();
    *lo = _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, v));
    *hi = _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, v));
}

static inline ATTR_AVX512 __m512i bf16_round_avx512(__m512 r)
{
    __m512i x = _mm512_castps_si512(avx512_canon(r));
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    x = _mm512_add_epi32(x, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
    return _mm512_srli_epi32(x, 16);
}

static inline ATTR_AVX512 void bf16_store_avx512(uint16_t *p, __m512 lo, __m512 hi)
{
    _mm512_storeu_si512(p, _mm512_packus_epi32(bf16_round_avx512(lo), bf16_round_avx512(hi)));
}

/* ---- kernels ---------------------------------------------------------------------- */

/* out = a vop b over n elements, W at a time; the tail on zero-padded copies. */
#define BINARY16(name, attr, V, W, load, store, vop)                                     \
    attr void name(void *out_, const void *a_, const void *b_, size_t n)                 \
    {                                                                                    \
        uint16_t *out = out_;                                                            \
        const uint16_t *a = a_, *b = b_;                                                 \
        V xl, xh, yl, yh;                                                                \
        size_t i = 0;                                                                    \
        for (; i + (W) <= n; i += (W)) {                                                 \
            load(a + i, &xl, &xh);                                                       \
            load(b + i, &yl, &yh);                                                       \
            store(out + i, vop(xl, yl), vop(xh, yh));                                    \
        }                                                                                \
        if (i < n) {                                                                     \
            uint16_t ta[W] = {0}, tb[W] = {0};                                           \
            memcpy(ta, a + i, (n - i) * sizeof *a);                                      \
            memcpy(tb, b + i, (n - i) * sizeof *b);                                      \
            load(ta, &xl, &xh);                                                          \
            load(tb, &yl, &yh);                                                          \
            store(ta, vop(xl, yl), vop(xh, yh));                                         \
            memcpy(out + i, ta, (n - i) * sizeof *out);                                  \
        }                                                                                \
    }

/* buf /= nranks, the same way. */
#define AVG16(name, attr, V, W, load, store, vdiv, vset1)                                \
    attr void name(void *buf_, size_t n, int nranks)                                     \
    {                                                                                    \
        uint16_t *buf = buf_;                                                            \
        const V d = vset1((float)nranks);                                                \
        V xl, xh;                                                                        \
        size_t i = 0;                                                                    \
        for (; i + (W) <= n; i += (W)) {                                                 \
            load(buf + i, &xl, &xh);                                                     \
            store(buf + i, vdiv(xl, d), vdiv(xh, d));                                    \
        }                                                                                \
        if (i < n) {                                                                     \
            uint16_t t[W] = {0};                                                         \
            memcpy(t, buf + i, (n - i) * sizeof *buf);                                   \
            load(t, &xl, &xh);                                                           \
            store(t, vdiv(xl, d), vdiv(xh, d));                                          \
            memcpy(buf + i, t, (n - i) * sizeof *buf);                                   \
        }                                                                                \
    }

#define KERNELS16(type, path, attr, V, W, vadd, vmul, vdiv, vset1)                        \
    BINARY16(pride_##type##_sum_##path, attr, V, W, type##_load_##path,                  \
             type##_store_##path, vadd)                                                  \
    BINARY16(pride_##type##_prod_##path, attr, V, W, type##_load_##path,                 \
             type##_store_##path, vmul)                                                  \
    AVG16(pride_##type##_avg_##path, attr, V, W, type##_load_##path, type##_store_##path, \
          vdiv, vset1)

KERNELS16(f16, avx2, ATTR_AVX2, __m256, 16, _mm256_add_ps, _mm256_mul_ps, _mm256_div_ps,
          _mm256_set1_ps)
KERNELS16(bf16, avx2, ATTR_AVX2, __m256, 16, _mm256_add_ps, _mm256_mul_ps, _mm256_div_ps,
          _mm256_set1_ps)
KERNELS16(f16, avx512, ATTR_AVX512, __m512, 32, _mm512_add_ps, _mm512_mul_ps,
          _mm512_div_ps, _mm512_set1_ps)
KERNELS16(bf16, avx512, ATTR_AVX512, __m512, 32, _mm512_add_ps, _mm512_mul_ps,
          _mm512_div_ps, _mm512_set1_ps)

#endif
