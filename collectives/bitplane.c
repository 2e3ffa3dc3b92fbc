/*
 * Bit-sliced vote counters (see bitplane.h): the plane adder, the majority compare,
 * the two fused for the ring's last step, and the planes-to-bytes expansion, each as
 * a portable word loop and as AVX2 and AVX-512 loops, picked once per process from
 * what the CPU supports.
 *
 * The one idea: a count is never stored per element. Plane j holds bit j of 64
 * elements' counts in one word, so one full adder (t = c & carry; c ^= carry;
 * carry = t) on a word adds a vote to 64 counts at once, and "count > T" for a
 * constant T is an MSB-first walk over the planes keeping two masks: elements
 * already known greater (gt) and those still equal to T's prefix (eq). The fused
 * add + compare walks LSB-first instead, as the ripple produces the sum's planes, so
 * the count never leaves registers. The SIMD paths do the very same boolean algebra
 * on wider registers, so every path gives bitwise identical results.
 *
 * PRIDE_KERNELS=portable|avx2|avx512 caps the path (the best one the CPU supports
 * at or below the request); unset or any other value means the best available.
 */
#include "bitplane.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct bitplane_impl {
    const char *name;
    void (*add)(uint64_t *out, const uint64_t *in, int nin, int nout, const uint64_t *vote,
                size_t nwords);
    void (*majority)(uint64_t *out, const uint64_t *planes, int nplanes, size_t nwords,
                     uint64_t thresh, uint64_t tiemask);
    void (*add_majority)(uint64_t *out, const uint64_t *in, int nin, int nout,
                         const uint64_t *vote, size_t nwords, uint64_t thresh, uint64_t tiemask);
    void (*to_counts)(uint8_t *counts, const uint64_t *planes, int nplanes, size_t nwords,
                      size_t nelems);
};

int bitplane_planes(int k)
{
    int n = 0;
    for (; k > 0; k >>= 1)
        n++;
    return n;
}

/* ---------------------------------------------------------------- portable */

/* Words [w0, w1) of the adder; also the tail of the SIMD paths. */
static void add_words(uint64_t *out, const uint64_t *in, int nin, int nout,
                      const uint64_t *vote, size_t nwords, size_t w0, size_t w1)
{
    for (size_t w = w0; w < w1; w++) {
        uint64_t carry = vote[w];
        for (int j = 0; j < nin; j++) {
            uint64_t c = in[(size_t)j * nwords + w];
            out[(size_t)j * nwords + w] = c ^ carry;
            carry &= c;
        }
        if (nout > nin)
            out[(size_t)nin * nwords + w] = carry;
    }
}

/* Four words at a time: four independent carry chains keep the core busy. */
static void add_portable(uint64_t *out, const uint64_t *in, int nin, int nout,
                         const uint64_t *vote, size_t nwords)
{
    size_t w = 0;
    for (; w + 4 <= nwords; w += 4) {
        uint64_t c0 = vote[w], c1 = vote[w + 1], c2 = vote[w + 2], c3 = vote[w + 3];
        const uint64_t *ip = in + w;
        uint64_t *op = out + w;
        for (int j = 0; j < nin; j++, ip += nwords, op += nwords) {
            uint64_t x0 = ip[0], x1 = ip[1], x2 = ip[2], x3 = ip[3];
            op[0] = x0 ^ c0;
            op[1] = x1 ^ c1;
            op[2] = x2 ^ c2;
            op[3] = x3 ^ c3;
            c0 &= x0;
            c1 &= x1;
            c2 &= x2;
            c3 &= x3;
        }
        if (nout > nin) {
            op[0] = c0;
            op[1] = c1;
            op[2] = c2;
            op[3] = c3;
        }
    }
    add_words(out, in, nin, nout, vote, nwords, w, nwords);
}

/* One greater-than / equal step of the MSB-first compare, for one word. */
#define MAJ_STEP(gt, eq, c, tbit)                                                          \
    do {                                                                                   \
        if (tbit) {                                                                        \
            (eq) &= (c);                                                                   \
        } else {                                                                           \
            (gt) |= (eq) & (c);                                                            \
            (eq) &= ~(c);                                                                  \
        }                                                                                  \
    } while (0)

static void majority_words(uint64_t *out, const uint64_t *planes, int nplanes, size_t nwords,
                           uint64_t thresh, uint64_t tiemask, size_t w0, size_t w1)
{
    for (size_t w = w0; w < w1; w++) {
        uint64_t gt = 0, eq = ~UINT64_C(0);
        for (int j = nplanes - 1; j >= 0; j--)
            MAJ_STEP(gt, eq, planes[(size_t)j * nwords + w], (thresh >> j) & 1);
        out[w] = gt | (eq & tiemask);
    }
}

static void majority_portable(uint64_t *out, const uint64_t *planes, int nplanes, size_t nwords,
                              uint64_t thresh, uint64_t tiemask)
{
    size_t w = 0;
    for (; w + 4 <= nwords; w += 4) {
        uint64_t g0 = 0, g1 = 0, g2 = 0, g3 = 0;
        uint64_t e0 = ~UINT64_C(0), e1 = e0, e2 = e0, e3 = e0;
        for (int j = nplanes - 1; j >= 0; j--) {
            const uint64_t *p = planes + (size_t)j * nwords + w;
            int tbit = (int)((thresh >> j) & 1);
            MAJ_STEP(g0, e0, p[0], tbit);
            MAJ_STEP(g1, e1, p[1], tbit);
            MAJ_STEP(g2, e2, p[2], tbit);
            MAJ_STEP(g3, e3, p[3], tbit);
        }
        out[w] = g0 | (e0 & tiemask);
        out[w + 1] = g1 | (e1 & tiemask);
        out[w + 2] = g2 | (e2 & tiemask);
        out[w + 3] = g3 | (e3 & tiemask);
    }
    majority_words(out, planes, nplanes, nwords, thresh, tiemask, w, nwords);
}

/* One plane of the fused add + compare, LSB-first: s = x ^ carry is bit j of the
   count; where s differs from thresh's bit j (t: all ones or all zeros) it decides gt,
   where it agrees the lower planes' answer stands. Branch-free, so the compiler may
   vectorize it. */
#define ADDMAJ_STEP(gt, eq, carry, x, t)                                                   \
    do {                                                                                   \
        uint64_t s_ = (x) ^ (carry);                                                       \
        (gt) = ((t) & (gt) & s_) | (~(t) & ((gt) | s_));                                   \
        (eq) &= ~(s_ ^ (t));                                                               \
        (carry) &= (x);                                                                    \
    } while (0)

/* The majority of in + vote without writing the count: the count is formed plane by
   plane from the bottom and compared on the way up. A growing count's top plane is
   the last carry (x = 0 in ADDMAJ_STEP). */
static void add_majority_words(uint64_t *out, const uint64_t *in, int nin, int nout,
                               const uint64_t *vote, size_t nwords, uint64_t thresh,
                               uint64_t tiemask, size_t w0, size_t w1)
{
    for (size_t w = w0; w < w1; w++) {
        uint64_t carry = vote[w], gt = 0, eq = ~UINT64_C(0);
        for (int j = 0; j < nin; j++)
            ADDMAJ_STEP(gt, eq, carry, in[(size_t)j * nwords + w], -((thresh >> j) & 1));
        if (nout > nin)
            ADDMAJ_STEP(gt, eq, carry, UINT64_C(0), -((thresh >> nin) & 1));
        out[w] = gt | (eq & tiemask);
    }
}

/* Four words at a time, as add_portable. */
static void add_majority_portable(uint64_t *out, const uint64_t *in, int nin, int nout,
                                  const uint64_t *vote, size_t nwords, uint64_t thresh,
                                  uint64_t tiemask)
{
    size_t w = 0;
    for (; w + 4 <= nwords; w += 4) {
        uint64_t c0 = vote[w], c1 = vote[w + 1], c2 = vote[w + 2], c3 = vote[w + 3];
        uint64_t g0 = 0, g1 = 0, g2 = 0, g3 = 0;
        uint64_t e0 = ~UINT64_C(0), e1 = e0, e2 = e0, e3 = e0;
        for (int j = 0; j < nin; j++) {
            const uint64_t *p = in + (size_t)j * nwords + w;
            uint64_t t = -((thresh >> j) & 1);
            ADDMAJ_STEP(g0, e0, c0, p[0], t);
            ADDMAJ_STEP(g1, e1, c1, p[1], t);
            ADDMAJ_STEP(g2, e2, c2, p[2], t);
            ADDMAJ_STEP(g3, e3, c3, p[3], t);
        }
        if (nout > nin) {
            uint64_t t = -((thresh >> nin) & 1);
            ADDMAJ_STEP(g0, e0, c0, UINT64_C(0), t);
            ADDMAJ_STEP(g1, e1, c1, UINT64_C(0), t);
            ADDMAJ_STEP(g2, e2, c2, UINT64_C(0), t);
            ADDMAJ_STEP(g3, e3, c3, UINT64_C(0), t);
        }
        out[w] = g0 | (e0 & tiemask);
        out[w + 1] = g1 | (e1 & tiemask);
        out[w + 2] = g2 | (e2 & tiemask);
        out[w + 3] = g3 | (e3 & tiemask);
    }
    add_majority_words(out, in, nin, nout, vote, nwords, thresh, tiemask, w, nwords);
}

/* spread8[b]: byte k is bit k of b (0 or 1). */
static uint64_t spread8[256];

static void spread8_init(void)
{
    for (uint64_t b = 0; b < 256; b++) {
        uint64_t x = b;
        x = (x | (x << 28)) & UINT64_C(0x0000000F0000000F);
        x = (x | (x << 14)) & UINT64_C(0x0003000300030003);
        x = (x | (x << 7)) & UINT64_C(0x0101010101010101);
        spread8[b] = x;
    }
}

/* Counts of the 64 elements of word w into out[0..63]. */
static void counts_word_portable(uint8_t *out, const uint64_t *planes, int nplanes,
                                 size_t nwords, size_t w)
{
    for (int b = 0; b < 8; b++) {
        uint64_t acc = 0;
        for (int j = 0; j < nplanes; j++)
            acc |= spread8[(planes[(size_t)j * nwords + w] >> (8 * b)) & 0xFF] << j;
        memcpy(out + 8 * b, &acc, 8);
    }
}

/* Words [w0, nwords) of the expansion, clipped to nelems; also the SIMD tails. */
static void counts_words(uint8_t *counts, const uint64_t *planes, int nplanes, size_t nwords,
                         size_t nelems, size_t w0)
{
    for (size_t w = w0; w < nwords && 64 * w < nelems; w++) {
        if (nelems - 64 * w >= 64) {
            counts_word_portable(counts + 64 * w, planes, nplanes, nwords, w);
        } else {
            uint8_t tmp[64];
            counts_word_portable(tmp, planes, nplanes, nwords, w);
            memcpy(counts + 64 * w, tmp, nelems - 64 * w);
        }
    }
}

static void counts_portable(uint8_t *counts, const uint64_t *planes, int nplanes, size_t nwords,
                            size_t nelems)
{
    counts_words(counts, planes, nplanes, nwords, nelems, 0);
}

static const struct bitplane_impl impl_portable = {
    .name = "portable",
    .add = add_portable,
    .majority = majority_portable,
    .add_majority = add_majority_portable,
    .to_counts = counts_portable,
};

/* -------------------------------------------------------------------- AVX2 */

#define AVX2 __attribute__((target("avx2")))

AVX2 static void add_avx2(uint64_t *out, const uint64_t *in, int nin, int nout,
                          const uint64_t *vote, size_t nwords)
{
    size_t w = 0;
    for (; w + 16 <= nwords; w += 16) {
        const __m256i *vp = (const __m256i *)(vote + w);
        __m256i c0 = _mm256_loadu_si256(vp), c1 = _mm256_loadu_si256(vp + 1);
        __m256i c2 = _mm256_loadu_si256(vp + 2), c3 = _mm256_loadu_si256(vp + 3);
        const uint64_t *ip = in + w;
        uint64_t *op = out + w;
        for (int j = 0; j < nin; j++, ip += nwords, op += nwords) {
            const __m256i *i4 = (const __m256i *)ip;
            __m256i *o4 = (__m256i *)op;
            __m256i x0 = _mm256_loadu_si256(i4), x1 = _mm256_loadu_si256(i4 + 1);
            __m256i x2 = _mm256_loadu_si256(i4 + 2), x3 = _mm256_loadu_si256(i4 + 3);
            _mm256_storeu_si256(o4, _mm256_xor_si256(x0, c0));
            _mm256_storeu_si256(o4 + 1, _mm256_xor_si256(x1, c1));
            _mm256_storeu_si256(o4 + 2, _mm256_xor_si256(x2, c2));
            _mm256_storeu_si256(o4 + 3, _mm256_xor_si256(x3, c3));
            c0 = _mm256_and_si256(c0, x0);
            c1 = _mm256_and_si256(c1, x1);
            c2 = _mm256_and_si256(c2, x2);
            c3 = _mm256_and_si256(c3, x3);
        }
        if (nout > nin) {
            __m256i *o4 = (__m256i *)op;
            _mm256_storeu_si256(o4, c0);
            _mm256_storeu_si256(o4 + 1, c1);
            _mm256_storeu_si256(o4 + 2, c2);
            _mm256_storeu_si256(o4 + 3, c3);
        }
    }
    add_words(out, in, nin, nout, vote, nwords, w, nwords);
}

/* Two vectors per step: the gt / eq chains of one vector are serial, two overlap. */
AVX2 static void majority_avx2(uint64_t *out, const uint64_t *planes, int nplanes,
                               size_t nwords, uint64_t thresh, uint64_t tiemask)
{
    const __m256i tm = _mm256_set1_epi64x((long long)tiemask);
    size_t w = 0;
    for (; w + 8 <= nwords; w += 8) {
        __m256i g0 = _mm256_setzero_si256(), e0 = _mm256_set1_epi64x(-1), g1 = g0, e1 = e0;
        for (int j = nplanes - 1; j >= 0; j--) {
            const __m256i *p = (const __m256i *)(planes + (size_t)j * nwords + w);
            __m256i c0 = _mm256_loadu_si256(p), c1 = _mm256_loadu_si256(p + 1);
            if ((thresh >> j) & 1) {
                e0 = _mm256_and_si256(e0, c0);
                e1 = _mm256_and_si256(e1, c1);
            } else {
                g0 = _mm256_or_si256(g0, _mm256_and_si256(e0, c0));
                g1 = _mm256_or_si256(g1, _mm256_and_si256(e1, c1));
                e0 = _mm256_andnot_si256(c0, e0);
                e1 = _mm256_andnot_si256(c1, e1);
            }
        }
        __m256i *o = (__m256i *)(out + w);
        _mm256_storeu_si256(o, _mm256_or_si256(g0, _mm256_and_si256(e0, tm)));
        _mm256_storeu_si256(o + 1, _mm256_or_si256(g1, _mm256_and_si256(e1, tm)));
    }
    majority_words(out, planes, nplanes, nwords, thresh, tiemask, w, nwords);
}

/* As add_majority_portable, four vectors of words at a time. */
AVX2 static void add_majority_avx2(uint64_t *out, const uint64_t *in, int nin, int nout,
                                   const uint64_t *vote, size_t nwords, uint64_t thresh,
                                   uint64_t tiemask)
{
    enum { V = 4 };
    const __m256i tm = _mm256_set1_epi64x((long long)tiemask), ones = _mm256_set1_epi64x(-1);
    size_t w = 0;
    for (; w + 4 * V <= nwords; w += 4 * V) {
        __m256i c[V], gt[V], eq[V];
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            c[v] = _mm256_loadu_si256((const __m256i *)(vote + w + 4 * v));
            gt[v] = _mm256_setzero_si256();
            eq[v] = ones;
        }
        /* plane nin, when the count grows, is the carry: x = 0 */
        for (int j = 0; j < nin + (nout > nin); j++) {
            int tbit = (int)((thresh >> j) & 1);
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) {
                __m256i x = j == nin ? _mm256_setzero_si256()
                                     : _mm256_loadu_si256(
                                           (const __m256i *)(in + (size_t)j * nwords + w + 4 * v));
                __m256i sum = _mm256_xor_si256(x, c[v]);
                if (tbit) {
                    gt[v] = _mm256_and_si256(gt[v], sum);
                    eq[v] = _mm256_and_si256(eq[v], sum);
                } else {
                    gt[v] = _mm256_or_si256(gt[v], sum);
                    eq[v] = _mm256_andnot_si256(sum, eq[v]);
                }
                c[v] = _mm256_and_si256(c[v], x);
            }
        }
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            _mm256_storeu_si256((__m256i *)(out + w + 4 * v),
                                _mm256_or_si256(gt[v], _mm256_and_si256(eq[v], tm)));
    }
    add_majority_words(out, in, nin, nout, vote, nwords, thresh, tiemask, w, nwords);
}

/* 32 bits -> 32 bytes of 0x00 / 0xFF, bit k to byte k. */
AVX2 static inline __m256i expand32_avx2(uint32_t bits)
{
    /* byte k of the result takes byte k/8 of bits (shuffles stay within 128-bit lanes) */
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)UINT64_C(0x8040201008040201));
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), pick);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

AVX2 static void counts_avx2(uint8_t *counts, const uint64_t *planes, int nplanes,
                             size_t nwords, size_t nelems)
{
    size_t w = 0;
    for (; w < nwords && nelems - 64 * w >= 64; w++) {
        __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
        for (int j = 0; j < nplanes; j++) {
            uint64_t m = planes[(size_t)j * nwords + w];
            __m256i v = _mm256_set1_epi8((char)(1 << j));
            lo = _mm256_or_si256(lo, _mm256_and_si256(expand32_avx2((uint32_t)m), v));
            hi = _mm256_or_si256(hi, _mm256_and_si256(expand32_avx2((uint32_t)(m >> 32)), v));
        }
        _mm256_storeu_si256((__m256i *)(counts + 64 * w), lo);
        _mm256_storeu_si256((__m256i *)(counts + 64 * w + 32), hi);
    }
    counts_words(counts, planes, nplanes, nwords, nelems, w);
}

static const struct bitplane_impl impl_avx2 = {
    .name = "avx2",
    .add = add_avx2,
    .majority = majority_avx2,
    .add_majority = add_majority_avx2,
    .to_counts = counts_avx2,
};

/* ----------------------------------------------------------------- AVX-512 */

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define AVX512_INLINE AVX512 static inline __attribute__((always_inline))
#define BP_MAXP 9 /* planes the specialized loops hold in registers: counts up to 511 */

/* The specialized loops: the plane count is a compile-time constant (each is
   instantiated once per count through a switch), so the planes of a block of V
   vectors sit in registers, all loaded before any is stored. That puts every plane's
   lines in flight at once and keeps the loads clear of the stores to the plane below
   (planes are nwords apart, often a multiple of 4 KiB); measured 1.5-1.8x faster than
   the plane-by-plane loop for the adder at 3 or more planes. Each returns how many
   words it did; the caller finishes the rest masked. */

AVX512_INLINE size_t add512_blocks(uint64_t *out, const uint64_t *in, const int nin,
                                   const int grow, const uint64_t *vote, size_t nwords)
{
    const int V = nin * 4 + 4 <= 32 ? 4 : 2; /* planes and carries fit the 32 registers */
    size_t w = 0;
    for (; w + 8 * V <= nwords; w += 8 * V) {
        __m512i c[4], x[BP_MAXP][4];
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            c[v] = _mm512_loadu_si512(vote + w + 8 * v);
#pragma GCC unroll 9
        for (int j = 0; j < nin; j++)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                x[j][v] = _mm512_loadu_si512(in + (size_t)j * nwords + w + 8 * v);
#pragma GCC unroll 9
        for (int j = 0; j < nin; j++)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) {
                _mm512_storeu_si512(out + (size_t)j * nwords + w + 8 * v,
                                    _mm512_xor_si512(x[j][v], c[v]));
                c[v] = _mm512_and_si512(c[v], x[j][v]);
            }
        if (grow)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                _mm512_storeu_si512(out + (size_t)nin * nwords + w + 8 * v, c[v]);
    }
    return w;
}

/* One MSB-first compare step on a vector: thresh bit set keeps only the equal
   elements that have the bit; clear makes the equal ones that have it greater. */
AVX512_INLINE void maj512_step(__m512i *gt, __m512i *eq, __m512i c, int tbit)
{
    if (tbit) {
        *eq = _mm512_and_si512(*eq, c);
    } else {
        *gt = _mm512_ternarylogic_epi64(*gt, *eq, c, 0xF8); /* gt | (eq & c) */
        *eq = _mm512_andnot_si512(c, *eq);
    }
}

AVX512_INLINE size_t maj512_blocks(uint64_t *out, const uint64_t *planes, const int np,
                                   size_t nwords, uint64_t thresh, __m512i tm)
{
    const int V = np * 4 + 8 <= 31 ? 4 : 2; /* planes, gt and eq fit the 32 registers */
    size_t w = 0;
    for (; w + 8 * V <= nwords; w += 8 * V) {
        __m512i x[BP_MAXP][4], gt[4], eq[4];
#pragma GCC unroll 9
        for (int j = 0; j < np; j++)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                x[j][v] = _mm512_loadu_si512(planes + (size_t)j * nwords + w + 8 * v);
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            gt[v] = _mm512_setzero_si512();
            eq[v] = _mm512_set1_epi64(-1);
        }
#pragma GCC unroll 9
        for (int j = np - 1; j >= 0; j--)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                maj512_step(&gt[v], &eq[v], x[j][v], (int)((thresh >> j) & 1));
#pragma GCC unroll 4
        for (int v = 0; v < V; v++)
            _mm512_storeu_si512(out + w + 8 * v, _mm512_ternarylogic_epi64(gt[v], eq[v], tm, 0xF8));
    }
    return w;
}

/* Instantiates body(N) for each plane count 1..BP_MAXP; other counts (0, or more
   than any vote has) leave all the words to the caller's loop. */
#define BP_SWITCH(n, body)                                                                 \
    switch (n) {                                                                           \
    case 1: body(1); break;                                                                \
    case 2: body(2); break;                                                                \
    case 3: body(3); break;                                                                \
    case 4: body(4); break;                                                                \
    case 5: body(5); break;                                                                \
    case 6: body(6); break;                                                                \
    case 7: body(7); break;                                                                \
    case 8: body(8); break;                                                                \
    case 9: body(9); break;                                                                \
    default: break;                                                                        \
    }

AVX512 static void add_avx512(uint64_t *out, const uint64_t *in, int nin, int nout,
                              const uint64_t *vote, size_t nwords)
{
    size_t w = 0;
    int grow = nout > nin;
#define ADD512(N) w = add512_blocks(out, in, N, grow, vote, nwords)
    BP_SWITCH(nin, ADD512)
#undef ADD512
    /* the rest one vector at a time, the last one masked */
    for (; w < nwords; w += 8) {
        __mmask8 k = nwords - w >= 8 ? 0xFF : (__mmask8)((1u << (nwords - w)) - 1);
        __m512i carry = _mm512_maskz_loadu_epi64(k, vote + w);
        for (int j = 0; j < nin; j++) {
            __m512i c = _mm512_maskz_loadu_epi64(k, in + (size_t)j * nwords + w);
            _mm512_mask_storeu_epi64(out + (size_t)j * nwords + w, k, _mm512_xor_si512(c, carry));
            carry = _mm512_and_si512(carry, c);
        }
        if (grow)
            _mm512_mask_storeu_epi64(out + (size_t)nin * nwords + w, k, carry);
    }
}

AVX512 static void majority_avx512(uint64_t *out, const uint64_t *planes, int nplanes,
                                   size_t nwords, uint64_t thresh, uint64_t tiemask)
{
    const __m512i tm = _mm512_set1_epi64((long long)tiemask);
    size_t w = 0;
#define MAJ512(N) w = maj512_blocks(out, planes, N, nwords, thresh, tm)
    BP_SWITCH(nplanes, MAJ512)
#undef MAJ512
    for (; w < nwords; w += 8) {
        __mmask8 k = nwords - w >= 8 ? 0xFF : (__mmask8)((1u << (nwords - w)) - 1);
        __m512i gt = _mm512_setzero_si512(), eq = _mm512_set1_epi64(-1);
        for (int j = nplanes - 1; j >= 0; j--)
            maj512_step(&gt, &eq, _mm512_maskz_loadu_epi64(k, planes + (size_t)j * nwords + w),
                        (int)((thresh >> j) & 1));
        _mm512_mask_storeu_epi64(out + w, k, _mm512_ternarylogic_epi64(gt, eq, tm, 0xF8));
    }
}

/* The count in + vote is formed plane by plane from the bottom and compared with
   thresh on the way up (LSB-first: a higher plane that differs from thresh overrides
   what the lower ones said), so nothing but the carry, gt and eq stays in registers
   and no count plane is written. vpternlogq does each update in one instruction. */
AVX512_INLINE void addmaj512_plane(__m512i *gt, __m512i *eq, __m512i *carry, __m512i x, int tbit)
{
    if (tbit) {
        *gt = _mm512_ternarylogic_epi64(*gt, x, *carry, 0x60); /* gt & (x ^ carry) */
        *eq = _mm512_ternarylogic_epi64(*eq, x, *carry, 0x60); /* eq & (x ^ carry) */
    } else {
        *gt = _mm512_ternarylogic_epi64(*gt, x, *carry, 0xF6); /* gt | (x ^ carry) */
        *eq = _mm512_ternarylogic_epi64(*eq, x, *carry, 0x90); /* eq & ~(x ^ carry) */
    }
    *carry = _mm512_and_si512(*carry, x);
}

/* The top plane of a growing count is the carry itself. */
AVX512_INLINE void addmaj512_top(__m512i *gt, __m512i *eq, __m512i carry, int tbit)
{
    if (tbit) {
        *gt = _mm512_and_si512(*gt, carry);
        *eq = _mm512_and_si512(*eq, carry);
    } else {
        *gt = _mm512_or_si512(*gt, carry);
        *eq = _mm512_andnot_si512(carry, *eq);
    }
}

/* Specialized per plane count as the adder is: the V vectors of every plane loaded
   first, then the sums and compares in registers. */
AVX512_INLINE size_t addmaj512_blocks(uint64_t *out, const uint64_t *in, const int nin,
                                      const int grow, const uint64_t *vote, size_t nwords,
                                      uint64_t thresh, __m512i tm)
{
    const int V = nin * 4 + 12 <= 31 ? 4 : 2; /* planes, carry, gt and eq in registers */
    size_t w = 0;
    for (; w + 8 * V <= nwords; w += 8 * V) {
        __m512i c[4], gt[4], eq[4], x[BP_MAXP][4];
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            c[v] = _mm512_loadu_si512(vote + w + 8 * v);
            gt[v] = _mm512_setzero_si512();
            eq[v] = _mm512_set1_epi64(-1);
        }
#pragma GCC unroll 9
        for (int j = 0; j < nin; j++)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                x[j][v] = _mm512_loadu_si512(in + (size_t)j * nwords + w + 8 * v);
#pragma GCC unroll 9
        for (int j = 0; j < nin; j++)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++)
                addmaj512_plane(&gt[v], &eq[v], &c[v], x[j][v], (int)((thresh >> j) & 1));
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            if (grow)
                addmaj512_top(&gt[v], &eq[v], c[v], (int)((thresh >> nin) & 1));
            _mm512_storeu_si512(out + w + 8 * v, _mm512_ternarylogic_epi64(gt[v], eq[v], tm, 0xF8));
        }
    }
    return w;
}

AVX512 static void add_majority_avx512(uint64_t *out, const uint64_t *in, int nin, int nout,
                                       const uint64_t *vote, size_t nwords, uint64_t thresh,
                                       uint64_t tiemask)
{
    const __m512i tm = _mm512_set1_epi64((long long)tiemask);
    size_t w = 0;
    int grow = nout > nin;
#define ADDMAJ512(N) w = addmaj512_blocks(out, in, N, grow, vote, nwords, thresh, tm)
    BP_SWITCH(nin, ADDMAJ512)
#undef ADDMAJ512
    for (; w < nwords; w += 8) {
        __mmask8 k = nwords - w >= 8 ? 0xFF : (__mmask8)((1u << (nwords - w)) - 1);
        __m512i c = _mm512_maskz_loadu_epi64(k, vote + w), gt = _mm512_setzero_si512();
        __m512i eq = _mm512_set1_epi64(-1);
        for (int j = 0; j < nin; j++)
            addmaj512_plane(&gt, &eq, &c, _mm512_maskz_loadu_epi64(k, in + (size_t)j * nwords + w),
                            (int)((thresh >> j) & 1));
        if (nout > nin)
            addmaj512_top(&gt, &eq, c, (int)((thresh >> nin) & 1));
        _mm512_mask_storeu_epi64(out + w, k, _mm512_ternarylogic_epi64(gt, eq, tm, 0xF8));
    }
}

AVX512 static void counts_avx512(uint8_t *counts, const uint64_t *planes, int nplanes,
                                 size_t nwords, size_t nelems)
{
    for (size_t w = 0; w < nwords && 64 * w < nelems; w++) {
        size_t left = nelems - 64 * w;
        __mmask64 k = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
        __m512i acc = _mm512_setzero_si512();
        for (int j = 0; j < nplanes; j++)
            acc = _mm512_mask_add_epi8(acc, planes[(size_t)j * nwords + w], acc,
                                       _mm512_set1_epi8((char)(1 << j)));
        _mm512_mask_storeu_epi8(counts + 64 * w, k, acc);
    }
}

static const struct bitplane_impl impl_avx512 = {
    .name = "avx512",
    .add = add_avx512,
    .majority = majority_avx512,
    .add_majority = add_majority_avx512,
    .to_counts = counts_avx512,
};

/* ---------------------------------------------------------------- dispatch */

static const struct bitplane_impl *bitplane_impl;
static pthread_once_t bitplane_once = PTHREAD_ONCE_INIT;

static void bitplane_choose(void)
{
    spread8_init();
    const char *want = getenv("PRIDE_KERNELS");
    int cap = 2;
    if (want && !strcmp(want, "portable"))
        cap = 0;
    else if (want && !strcmp(want, "avx2"))
        cap = 1;
    __builtin_cpu_init();
    if (cap >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        bitplane_impl = &impl_avx512;
    else if (cap >= 1 && __builtin_cpu_supports("avx2"))
        bitplane_impl = &impl_avx2;
    else
        bitplane_impl = &impl_portable;
}

static const struct bitplane_impl *bitplane_get(void)
{
    pthread_once(&bitplane_once, bitplane_choose);
    return bitplane_impl;
}

const char *bitplane_isa(void)
{
    return bitplane_get()->name;
}

void bitplane_add_vote(uint64_t *out, const uint64_t *in, int nplanes_in, int nplanes_out,
                       const uint64_t *vote, size_t nwords)
{
    bitplane_get()->add(out, in, nplanes_in, nplanes_out, vote, nwords);
}

/* The compare's constants: thresh = floor(nranks/2), and which elements a tie sets. */
static uint64_t bitplane_tiemask(int nranks, pride_tie_t tie, size_t first_bit)
{
    if (nranks % 2 == 0 && tie == PRIDE_TIE_POSITIVE)
        return ~UINT64_C(0);
    if (nranks % 2 == 0 && tie == PRIDE_TIE_ALTERNATE)
        return first_bit % 2 ? UINT64_C(0xAAAAAAAAAAAAAAAA) : UINT64_C(0x5555555555555555);
    return 0;
}

void bitplane_majority(uint64_t *out, const uint64_t *planes, int nplanes, size_t nwords,
                       int nranks, pride_tie_t tie, size_t first_bit)
{
    const struct bitplane_impl *impl = bitplane_get();
    uint64_t thresh = (uint64_t)(nranks / 2);
    if (nplanes < 64 && (thresh >> nplanes) != 0) {
        /* T needs more planes than the counts have: no count reaches it */
        memset(out, 0, nwords * sizeof *out);
        return;
    }
    impl->majority(out, planes, nplanes, nwords, thresh, bitplane_tiemask(nranks, tie, first_bit));
}

void bitplane_add_majority(uint64_t *out, const uint64_t *in, int nplanes_in, int nplanes_out,
                           const uint64_t *vote, size_t nwords, int nranks, pride_tie_t tie,
                           size_t first_bit)
{
    const struct bitplane_impl *impl = bitplane_get();
    uint64_t thresh = (uint64_t)(nranks / 2);
    if (nplanes_out < 64 && (thresh >> nplanes_out) != 0) {
        memset(out, 0, nwords * sizeof *out);
        return;
    }
    impl->add_majority(out, in, nplanes_in, nplanes_out, vote, nwords, thresh,
                       bitplane_tiemask(nranks, tie, first_bit));
}

void bitplane_to_counts(uint8_t *counts, const uint64_t *planes, int nplanes, size_t nwords,
                        size_t nelems)
{
    bitplane_get()->to_counts(counts, planes, nplanes, nwords, nelems);
}
