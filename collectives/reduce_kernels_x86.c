/*
 * float16 SUM, PROD and AVG finish for the AVX2 (+F16C) and AVX-512 paths.
 *
 * The one idea: F16C's vcvtph2ps widens float16 exactly and vcvtps2ph with an
 * immediate round-to-nearest-even rounding is the IEEE conversion, so
 * "widen, one float32 operation, canonicalize NaN, round back" here is bit-identical
 * to the portable element rule in reduce_kernels.c (NaN payloads are never seen: a
 * NaN result becomes the canonical 0x7fc00000 before rounding, which F16C and the
 * portable code both turn into 0x7e00). Tails are computed by the same vector code:
 * AVX2 on a zero-padded copy, AVX-512 with masked loads and stores. Only this file
 * uses intrinsics; every function carries its own target attribute, so the build
 * needs no -m flags and the caller checks the CPU before calling.
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

/* ---- AVX2 + F16C: 8 elements per step ------------------------------------------ */

static inline ATTR_AVX2 __m256 avx2_canon(__m256 r)
{
    __m256 qnan = _mm256_castsi256_ps(_mm256_set1_epi32(QNAN_BITS));
    return _mm256_blendv_ps(r, qnan, _mm256_cmp_ps(r, r, _CMP_UNORD_Q));
}

static inline ATTR_AVX2 __m128i avx2_load8(const uint16_t *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

#define F16_AVX2_KERNEL(name, vop)                                                       \
    static inline ATTR_AVX2 __m128i name##_step(__m128i a, __m128i b)                    \
    {                                                                                    \
        __m256 r = vop(_mm256_cvtph_ps(a), _mm256_cvtph_ps(b));                          \
        return _mm256_cvtps_ph(avx2_canon(r), ROUND_EVEN);                               \
    }                                                                                    \
    ATTR_AVX2 void name(void *out_, const void *a_, const void *b_, size_t n)            \
    {                                                                                    \
        uint16_t *out = out_;                                                            \
        const uint16_t *a = a_, *b = b_;                                                 \
        size_t i = 0;                                                                    \
        for (; i + 8 <= n; i += 8)                                                       \
            _mm_storeu_si128((__m128i *)(out + i),                                       \
                             name##_step(avx2_load8(a + i), avx2_load8(b + i)));         \
        if (i < n) {                                                                     \
            uint16_t ta[8] = {0}, tb[8] = {0}, to[8];                                    \
            memcpy(ta, a + i, (n - i) * sizeof *a);                                      \
            memcpy(tb, b + i, (n - i) * sizeof *b);                                      \
            _mm_storeu_si128((__m128i *)to, name##_step(avx2_load8(ta), avx2_load8(tb))); \
            memcpy(out + i, to, (n - i) * sizeof *out);                                  \
        }                                                                                \
    }

F16_AVX2_KERNEL(pride_f16_sum_avx2, _mm256_add_ps)
F16_AVX2_KERNEL(pride_f16_prod_avx2, _mm256_mul_ps)

static inline ATTR_AVX2 __m128i f16_avg_avx2_step(__m128i x, __m256 d)
{
    return _mm256_cvtps_ph(avx2_canon(_mm256_div_ps(_mm256_cvtph_ps(x), d)), ROUND_EVEN);
}

ATTR_AVX2 void pride_f16_avg_avx2(void *buf_, size_t n, int nranks)
{
    uint16_t *buf = buf_;
    const __m256 d = _mm256_set1_ps((float)nranks);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(buf + i), f16_avg_avx2_step(avx2_load8(buf + i), d));
    if (i < n) {
        uint16_t t[8] = {0};
        memcpy(t, buf + i, (n - i) * sizeof *buf);
        _mm_storeu_si128((__m128i *)t, f16_avg_avx2_step(avx2_load8(t), d));
        memcpy(buf + i, t, (n - i) * sizeof *buf);
    }
}

/* ---- AVX-512: 16 elements per step, masked tail --------------------------------- */

static inline ATTR_AVX512 __m512 avx512_canon(__m512 r)
{
    __m512 qnan = _mm512_castsi512_ps(_mm512_set1_epi32(QNAN_BITS));
    return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q), qnan);
}

static inline ATTR_AVX512 __mmask16 avx512_tail_mask(size_t left)
{
    return (__mmask16)((1u << left) - 1);
}

#define F16_AVX512_KERNEL(name, vop)                                                     \
    static inline ATTR_AVX512 __m256i name##_step(__m256i a, __m256i b)                  \
    {                                                                                    \
        __m512 r = vop(_mm512_cvtph_ps(a), _mm512_cvtph_ps(b));                          \
        return _mm512_cvtps_ph(avx512_canon(r), ROUND_EVEN);                             \
    }                                                                                    \
    ATTR_AVX512 void name(void *out_, const void *a_, const void *b_, size_t n)          \
    {                                                                                    \
        uint16_t *out = out_;                                                            \
        const uint16_t *a = a_, *b = b_;                                                 \
        size_t i = 0;                                                                    \
        for (; i + 16 <= n; i += 16)                                                     \
            _mm256_storeu_si256((__m256i *)(out + i),                                    \
                                name##_step(_mm256_loadu_si256((const __m256i *)(a + i)), \
                                            _mm256_loadu_si256((const __m256i *)(b + i)))); \
        if (i < n) {                                                                     \
            __mmask16 m = avx512_tail_mask(n - i);                                       \
            _mm256_mask_storeu_epi16(out + i, m,                                         \
                                     name##_step(_mm256_maskz_loadu_epi16(m, a + i),      \
                                                 _mm256_maskz_loadu_epi16(m, b + i)));    \
        }                                                                                \
    }

F16_AVX512_KERNEL(pride_f16_sum_avx512, _mm512_add_ps)
F16_AVX512_KERNEL(pride_f16_prod_avx512, _mm512_mul_ps)

static inline ATTR_AVX512 __m256i f16_avg_avx512_step(__m256i x, __m512 d)
{
    return _mm512_cvtps_ph(avx512_canon(_mm512_div_ps(_mm512_cvtph_ps(x), d)), ROUND_EVEN);
}

ATTR_AVX512 void pride_f16_avg_avx512(void *buf_, size_t n, int nranks)
{
    uint16_t *buf = buf_;
    const __m512 d = _mm512_set1_ps((float)nranks);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(buf + i),
                            f16_avg_avx512_step(_mm256_loadu_si256((const __m256i *)(buf + i)),
                                                d));
    if (i < n) {
        __mmask16 m = avx512_tail_mask(n - i);
        _mm256_mask_storeu_epi16(buf + i, m,
                                 f16_avg_avx512_step(_mm256_maskz_loadu_epi16(m, buf + i), d));
    }
}

#endif
