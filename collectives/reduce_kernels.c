/*
 * Element-wise reduction kernels: one rule per element, the same on every code path.
 *
 * The one idea: each output element is a pure function of its two inputs, and every
 * path (portable C, AVX2 + F16C, AVX-512) computes the same function bit for bit:
 *  - integers wrap (computed in unsigned arithmetic; signed only for MIN/MAX);
 *  - floating SUM, PROD and AVG's division are one IEEE operation in the element's own
 *    precision; float16 and bfloat16 are widened to float32 exactly, combined with one
 *    float32 operation and rounded back to nearest even;
 *  - MIN/MAX are IEEE 754-2019 minimum/maximum: a NaN in either input gives NaN, and
 *    -0 < +0. They never round, so float16/bfloat16 MIN/MAX compare the 16-bit words
 *    directly (same result as widening);
 *  - every NaN a kernel produces is the canonical quiet NaN (positive sign, only the
 *    quiet bit: 0x7fc00000, 0x7ff8000000000000, 0x7e00, 0x7fc0), so no result depends
 *    on which operand came first or on a NaN's payload.
 * MIN/MAX are therefore commutative and associative, and ring, tree and
 * halving-doubling allreduce give identical MIN/MAX results; SUM/PROD results are
 * identical for a given order of operations, whichever path a rank runs. The kernels
 * assume the default floating-point environment (round to nearest, no FTZ/DAZ).
 *
 * The simple kernels are plain loops: a main loop over a multiple of 64 elements
 * (so GCC's -O2 "very cheap" vectorizer needs no epilogue) marked ivdep (out may be
 * the very same pointer as a or b, which carries no dependence between iterations;
 * partial overlap is not allowed), then a scalar tail. The same source is compiled
 * for the baseline ISA and, with target attributes, for AVX2 and AVX-512: that is
 * how those paths get them. float16 and bfloat16 SUM/PROD/AVG, whose conversions GCC
 * does not vectorize (well), use intrinsics on those paths (reduce_kernels_x86.c).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pride/status.h"
#include "reduce_kernels.h"
#include "reduce_kernels_impl.h"

#define KERNEL_NDTYPES (PRIDE_FLOAT64 + 1)
#define KERNEL_NOPS 4 /* SUM PROD MIN MAX; AVG reduces as SUM */

#define F32_QNAN 0x7fc00000u
#define F64_QNAN 0x7ff8000000000000u
#define F16_QNAN 0x7e00u
#define BF16_QNAN 0x7fc0u

/* ---- bit views ---------------------------------------------------------------- */

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline double f64_from(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline float f32_canon(float r) { return r != r ? f32_from(F32_QNAN) : r; }
static inline double f64_canon(double r) { return r != r ? f64_from(F64_QNAN) : r; }

/* ---- float16 and bfloat16 conversions ---------------------------------------- */

static inline float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 is exact and a normal float32 */
        float f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exp == 0x1f) /* infinity or NaN; a NaN keeps its payload */
        return f32_from(sign | 0x7f800000u | man << 13);
    return f32_from(sign | (exp + 112) << 23 | man << 13);
}

/* Round m >> shift to nearest, ties to even (1 <= shift <= 31, m < 2^32 - 2^shift);
 * branch-free: the remainder's carry decides, an odd quotient tips a tie up. */
static inline uint32_t round_shift_even(uint32_t m, unsigned shift)
{
    return (m + (1u << (shift - 1)) - 1 + ((m >> shift) & 1)) >> shift;
}

static inline uint16_t float_to_half(float f)
{
    uint32_t x = f32_bits(f), ax = x & 0x7fffffffu, e = ax >> 23;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (ax > 0x7f800000u) { /* NaN: keep the top payload bits; never turn into inf */
        uint16_t man = (uint16_t)((ax >> 13) & 0x3ffu);
        return (uint16_t)(sign | 0x7c00u | (man ? man : 0x200u));
    }
    if (ax >= 0x47800000u) /* 65536 and up, and inf: overflow */
        return (uint16_t)(sign | 0x7c00u);
    if (e >= 113) /* normal half; a carry out of the mantissa lands on the next
                     exponent, up to 0x7c00 (inf) from 65520 on */
        return (uint16_t)(sign | round_shift_even(ax - (112u << 23), 13));
    if (e < 102) /* below 2^-25: rounds to zero */
        return sign;
    /* subnormal half: the value is m * 2^(e-150), the half unit is 2^-24 */
    return (uint16_t)(sign | round_shift_even((ax & 0x7fffffu) | 0x800000u, 126 - e));
}

static inline float bf16_to_float(uint16_t h) { return f32_from((uint32_t)h << 16); }

/* Round a float that is not NaN to bfloat16, nearest even; overflow carries to inf. */
static inline uint16_t bf16_round(float f)
{
    uint32_t x = f32_bits(f);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

static inline uint16_t float_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        uint16_t top = (uint16_t)(x >> 16);
        return (uint16_t)(top | ((top & 0x7fu) ? 0 : 0x40u));
    }
    return bf16_round(f);
}

float pride_half_to_float(uint16_t h) { return half_to_float(h); }
uint16_t pride_float_to_half(float f) { return float_to_half(f); }
float pride_bf16_to_float(uint16_t h) { return bf16_to_float(h); }
uint16_t pride_float_to_bf16(float f) { return float_to_bf16(f); }

/* ---- element rules ------------------------------------------------------------ */

static inline uint8_t u8_sum(uint8_t x, uint8_t y) { return (uint8_t)(x + y); }
static inline uint8_t u8_prod(uint8_t x, uint8_t y) { return (uint8_t)(x * y); }
static inline uint32_t u32_sum(uint32_t x, uint32_t y) { return x + y; }
static inline uint32_t u32_prod(uint32_t x, uint32_t y) { return x * y; }
static inline uint64_t u64_sum(uint64_t x, uint64_t y) { return x + y; }
static inline uint64_t u64_prod(uint64_t x, uint64_t y) { return x * y; }

#define MINMAX_RULES(T)                                                                \
    static inline T T##_min(T x, T y) { return x < y ? x : y; }                       \
    static inline T T##_max(T x, T y) { return x > y ? x : y; }
MINMAX_RULES(int8_t)
MINMAX_RULES(uint8_t)
MINMAX_RULES(int32_t)
MINMAX_RULES(uint32_t)
MINMAX_RULES(int64_t)
MINMAX_RULES(uint64_t)

static inline float f32_sum(float x, float y) { return f32_canon(x + y); }
static inline float f32_prod(float x, float y) { return f32_canon(x * y); }
static inline float f32_avg(float x, float n) { return f32_canon(x / n); }
static inline double f64_sum(double x, double y) { return f64_canon(x + y); }
static inline double f64_prod(double x, double y) { return f64_canon(x * y); }
static inline double f64_avg(double x, double n) { return f64_canon(x / n); }

/*
 * Floating MIN/MAX on the bit patterns: flipping the magnitude bits of negative
 * values gives integer keys in the IEEE total order (-0 just below +0), and equal
 * keys mean equal bits. A NaN in either input gives the canonical NaN.
 */
#define FLOAT_MINMAX_RULES(name, U, S, bits, inf, qnan)                                       \
    static inline S name##_key(U u)                                                      \
    {                                                                                    \
        return (S)(u ^ (U)((U)(S)((S)u >> ((bits) - 1)) >> 1));                          \
    }                                                                                    \
    static inline int name##_isnan(U u)                                                  \
    {                                                                                    \
        return (S)(u & (U)((U)-1 >> 1)) > (S)(inf);                                      \
    }                                                                                    \
    static inline U name##_min(U x, U y)                                                 \
    {                                                                                    \
        U r = name##_key(x) < name##_key(y) ? x : y;                                     \
        return (name##_isnan(x) | name##_isnan(y)) ? (U)(qnan) : r;                      \
    }                                                                                    \
    static inline U name##_max(U x, U y)                                                 \
    {                                                                                    \
        U r = name##_key(x) > name##_key(y) ? x : y;                                     \
        return (name##_isnan(x) | name##_isnan(y)) ? (U)(qnan) : r;                      \
    }
FLOAT_MINMAX_RULES(f16, uint16_t, int16_t, 16, 0x7c00, F16_QNAN)
FLOAT_MINMAX_RULES(bf16, uint16_t, int16_t, 16, 0x7f80, BF16_QNAN)
FLOAT_MINMAX_RULES(f32, uint32_t, int32_t, 32, 0x7f800000, F32_QNAN)
FLOAT_MINMAX_RULES(f64, uint64_t, int64_t, 64, 0x7ff0000000000000, F64_QNAN)

static inline uint16_t f16_sum(uint16_t x, uint16_t y)
{
    return float_to_half(f32_canon(half_to_float(x) + half_to_float(y)));
}
static inline uint16_t f16_prod(uint16_t x, uint16_t y)
{
    return float_to_half(f32_canon(half_to_float(x) * half_to_float(y)));
}
static inline uint16_t f16_avg(uint16_t x, float n)
{
    return float_to_half(f32_canon(half_to_float(x) / n));
}
static inline uint16_t bf16_sum(uint16_t x, uint16_t y)
{
    return bf16_round(f32_canon(bf16_to_float(x) + bf16_to_float(y)));
}
static inline uint16_t bf16_prod(uint16_t x, uint16_t y)
{
    return bf16_round(f32_canon(bf16_to_float(x) * bf16_to_float(y)));
}
static inline uint16_t bf16_avg(uint16_t x, float n)
{
    return bf16_round(f32_canon(bf16_to_float(x) / n));
}

/* ---- plain loops -------------------------------------------------------------- */

#define KERNEL_LOOP(name, attr, T, rule)                                                 \
    attr static void name(void *out_, const void *a_, const void *b_, size_t n)          \
    {                                                                                    \
        T *out = out_;                                                                   \
        const T *a = a_, *b = b_;                                                        \
        size_t i = 0, body = n & ~(size_t)63;                                            \
        _Pragma("GCC ivdep") for (; i < body; i++) out[i] = rule(a[i], b[i]);            \
        for (; i < n; i++)                                                               \
            out[i] = rule(a[i], b[i]);                                                   \
    }

#define AVG_LOOP(name, attr, T, S, rule)                                                 \
    attr static void name(void *buf_, size_t n, int nranks)                              \
    {                                                                                    \
        T *buf = buf_;                                                                   \
        const S d = (S)nranks;                                                           \
        size_t i = 0, body = n & ~(size_t)63;                                            \
        _Pragma("GCC ivdep") for (; i < body; i++) buf[i] = rule(buf[i], d);             \
        for (; i < n; i++)                                                               \
            buf[i] = rule(buf[i], d);                                                    \
    }

/* The kernels the compiler vectorizes by itself, for one path. Signed and unsigned
 * SUM/PROD share the unsigned kernel: wrapping arithmetic has the same bits. */
#define PLAIN_STREAM_KERNELS(p, attr)                                                    \
    KERNEL_LOOP(u8_sum_##p, attr, uint8_t, u8_sum)                                       \
    KERNEL_LOOP(u8_prod_##p, attr, uint8_t, u8_prod)                                     \
    KERNEL_LOOP(i8_min_##p, attr, int8_t, int8_t_min)                                    \
    KERNEL_LOOP(i8_max_##p, attr, int8_t, int8_t_max)                                    \
    KERNEL_LOOP(u8_min_##p, attr, uint8_t, uint8_t_min)                                  \
    KERNEL_LOOP(u8_max_##p, attr, uint8_t, uint8_t_max)                                  \
    KERNEL_LOOP(u32_sum_##p, attr, uint32_t, u32_sum)                                    \
    KERNEL_LOOP(u32_prod_##p, attr, uint32_t, u32_prod)                                  \
    KERNEL_LOOP(i32_min_##p, attr, int32_t, int32_t_min)                                 \
    KERNEL_LOOP(i32_max_##p, attr, int32_t, int32_t_max)                                 \
    KERNEL_LOOP(u32_min_##p, attr, uint32_t, uint32_t_min)                               \
    KERNEL_LOOP(u32_max_##p, attr, uint32_t, uint32_t_max)                               \
    KERNEL_LOOP(u64_sum_##p, attr, uint64_t, u64_sum)                                    \
    KERNEL_LOOP(u64_prod_##p, attr, uint64_t, u64_prod)                                  \
    KERNEL_LOOP(i64_min_##p, attr, int64_t, int64_t_min)                                 \
    KERNEL_LOOP(i64_max_##p, attr, int64_t, int64_t_max)                                 \
    KERNEL_LOOP(u64_min_##p, attr, uint64_t, uint64_t_min)                               \
    KERNEL_LOOP(u64_max_##p, attr, uint64_t, uint64_t_max)                               \
    KERNEL_LOOP(f32_sum_##p, attr, float, f32_sum)                                       \
    KERNEL_LOOP(f32_prod_##p, attr, float, f32_prod)                                     \
    KERNEL_LOOP(f64_sum_##p, attr, double, f64_sum)                                      \
    KERNEL_LOOP(f64_prod_##p, attr, double, f64_prod)                                    \
    AVG_LOOP(f32_avg_##p, attr, float, float, f32_avg)                                   \
    AVG_LOOP(f64_avg_##p, attr, double, double, f64_avg)

#define PLAIN_FLOAT_MINMAX_KERNELS(p, attr)                                              \
    KERNEL_LOOP(f16_min_##p, attr, uint16_t, f16_min)                                    \
    KERNEL_LOOP(f16_max_##p, attr, uint16_t, f16_max)                                    \
    KERNEL_LOOP(bf16_min_##p, attr, uint16_t, bf16_min)                                  \
    KERNEL_LOOP(bf16_max_##p, attr, uint16_t, bf16_max)                                  \
    KERNEL_LOOP(f32_min_##p, attr, uint32_t, f32_min)                                    \
    KERNEL_LOOP(f32_max_##p, attr, uint32_t, f32_max)                                    \
    KERNEL_LOOP(f64_min_##p, attr, uint64_t, f64_min)                                    \
    KERNEL_LOOP(f64_max_##p, attr, uint64_t, f64_max)

/* One path's table, indexed by dtype: {SUM, PROD, MIN, MAX}, AVG finish. */
struct kernel_row {
    pride_kernel_fn op[KERNEL_NOPS];
    pride_avg_fn avg;
};

/* p: suffix of the streaming kernels, q: of the floating MIN/MAX kernels; then the
 * float16 and bfloat16 SUM, PROD and AVG kernels. */
#define KERNEL_ROWS(p, q, f16_sum, f16_prod, f16_avg, bf16_sum, bf16_prod, bf16_avg)      \
    {                                                                                    \
        [PRIDE_INT8] = {{u8_sum_##p, u8_prod_##p, i8_min_##p, i8_max_##p}, NULL},        \
        [PRIDE_UINT8] = {{u8_sum_##p, u8_prod_##p, u8_min_##p, u8_max_##p}, NULL},       \
        [PRIDE_INT32] = {{u32_sum_##p, u32_prod_##p, i32_min_##p, i32_max_##p}, NULL},   \
        [PRIDE_UINT32] = {{u32_sum_##p, u32_prod_##p, u32_min_##p, u32_max_##p}, NULL},  \
        [PRIDE_INT64] = {{u64_sum_##p, u64_prod_##p, i64_min_##p, i64_max_##p}, NULL},   \
        [PRIDE_UINT64] = {{u64_sum_##p, u64_prod_##p, u64_min_##p, u64_max_##p}, NULL},  \
        [PRIDE_FLOAT16] = {{f16_sum, f16_prod, f16_min_##q, f16_max_##q}, f16_avg},      \
        [PRIDE_BFLOAT16] = {{bf16_sum, bf16_prod, bf16_min_##q, bf16_max_##q}, bf16_avg}, \
        [PRIDE_FLOAT32] = {{f32_sum_##p, f32_prod_##p, f32_min_##q, f32_max_##q},        \
                           f32_avg_##p},                                                 \
        [PRIDE_FLOAT64] = {{f64_sum_##p, f64_prod_##p, f64_min_##q, f64_max_##q},        \
                           f64_avg_##p},                                                 \
    }

PLAIN_STREAM_KERNELS(portable, )
PLAIN_FLOAT_MINMAX_KERNELS(portable, )
/* float16 and bfloat16 SUM/PROD/AVG convert element by element on the portable path. */
KERNEL_LOOP(f16_sum_portable, , uint16_t, f16_sum)
KERNEL_LOOP(f16_prod_portable, , uint16_t, f16_prod)
AVG_LOOP(f16_avg_portable, , uint16_t, float, f16_avg)
KERNEL_LOOP(bf16_sum_portable, , uint16_t, bf16_sum)
KERNEL_LOOP(bf16_prod_portable, , uint16_t, bf16_prod)
AVG_LOOP(bf16_avg_portable, , uint16_t, float, bf16_avg)

#if defined(__x86_64__) || defined(__i386__)
#define KERNELS_X86 1
#define ATTR_AVX2 __attribute__((target("avx2,f16c")))
/* AVX-512 instructions on 256-bit vectors stream fastest here (about 10% over 512-bit
 * for SUM at 1 MiB on Sapphire Rapids), while floating MIN/MAX, with more work per
 * byte, gain about 15% from 512-bit vectors; pride-kbench measures both. */
#define ATTR_AVX512(width)                                                               \
    __attribute__((target("avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq,"                \
                          "prefer-vector-width=" #width)))
PLAIN_STREAM_KERNELS(avx2, ATTR_AVX2)
PLAIN_FLOAT_MINMAX_KERNELS(avx2, ATTR_AVX2)
PLAIN_STREAM_KERNELS(avx512y, ATTR_AVX512(256))
PLAIN_FLOAT_MINMAX_KERNELS(avx512z, ATTR_AVX512(512))
#endif

static const struct kernel_row kernel_table[PRIDE_KPATH_COUNT][KERNEL_NDTYPES] = {
    [PRIDE_KPATH_PORTABLE] = KERNEL_ROWS(portable, portable, f16_sum_portable,
                                         f16_prod_portable, f16_avg_portable,
                                         bf16_sum_portable, bf16_prod_portable,
                                         bf16_avg_portable),
#ifdef KERNELS_X86
    [PRIDE_KPATH_AVX2] = KERNEL_ROWS(avx2, avx2, pride_f16_sum_avx2, pride_f16_prod_avx2,
                                     pride_f16_avg_avx2, pride_bf16_sum_avx2,
                                     pride_bf16_prod_avx2, pride_bf16_avg_avx2),
    [PRIDE_KPATH_AVX512] = KERNEL_ROWS(avx512y, avx512z, pride_f16_sum_avx512,
                                       pride_f16_prod_avx512, pride_f16_avg_avx512,
                                       pride_bf16_sum_avx512, pride_bf16_prod_avx512,
                                       pride_bf16_avg_avx512),
#endif
};

/* ---- path choice -------------------------------------------------------------- */

static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;
static int kernels_cpu_has[PRIDE_KPATH_COUNT];
static pride_kpath_t kernels_active;

static void kernels_choose(void)
{
    const char *want = getenv("PRIDE_KERNELS");
    int p;

    kernels_cpu_has[PRIDE_KPATH_PORTABLE] = 1;
#ifdef KERNELS_X86
    __builtin_cpu_init();
    kernels_cpu_has[PRIDE_KPATH_AVX2] =
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    kernels_cpu_has[PRIDE_KPATH_AVX512] =
        kernels_cpu_has[PRIDE_KPATH_AVX2] && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq");
#endif
    kernels_active = PRIDE_KPATH_PORTABLE;
    for (p = PRIDE_KPATH_COUNT - 1; p > PRIDE_KPATH_PORTABLE; p--) {
        if (kernels_cpu_has[p]) {
            kernels_active = (pride_kpath_t)p;
            break;
        }
    }
    if (want == NULL || *want == '\0' || strcmp(want, "auto") == 0)
        return;
    for (p = 0; p < PRIDE_KPATH_COUNT; p++)
        if (strcmp(want, pride_kpath_name((pride_kpath_t)p)) == 0)
            break;
    if (p < PRIDE_KPATH_COUNT && kernels_cpu_has[p]) {
        kernels_active = (pride_kpath_t)p;
        return;
    }
    fprintf(stderr, "pride: PRIDE_KERNELS=%s %s; using %s\n", want,
            p < PRIDE_KPATH_COUNT ? "is not supported by this CPU"
                                  : "is not one of auto, portable, avx2, avx512",
            pride_kpath_name(kernels_active));
}

int pride_kpath_supported(pride_kpath_t path)
{
    if ((unsigned)path >= PRIDE_KPATH_COUNT)
        return 0;
    pthread_once(&kernels_once, kernels_choose);
    return kernels_cpu_has[path];
}

pride_kpath_t pride_kpath_active(void)
{
    pthread_once(&kernels_once, kernels_choose);
    return kernels_active;
}

const char *pride_kpath_name(pride_kpath_t path)
{
    switch (path) {
    case PRIDE_KPATH_PORTABLE:
        return "portable";
    case PRIDE_KPATH_AVX2:
        return "avx2";
    case PRIDE_KPATH_AVX512:
        return "avx512";
    default:
        return "unknown";
    }
}

/* ---- entry points ------------------------------------------------------------- */

int pride_reduce_check(pride_dtype_t dt, pride_op_t op)
{
    if ((unsigned)dt >= KERNEL_NDTYPES || (unsigned)op > PRIDE_AVG)
        return PRIDE_ERR_INVALID;
    if (op == PRIDE_AVG && kernel_table[PRIDE_KPATH_PORTABLE][dt].avg == NULL)
        return PRIDE_ERR_INVALID;
    return PRIDE_OK;
}

int reduce_apply3_path(pride_kpath_t path, void *out, const void *a, const void *b,
                       size_t count, pride_dtype_t dt, pride_op_t op)
{
    int st = pride_reduce_check(dt, op);
    if (st != PRIDE_OK)
        return st;
    if (!pride_kpath_supported(path))
        return PRIDE_ERR_UNSUPPORTED;
    if (count == 0)
        return PRIDE_OK;
    if (out == NULL || a == NULL || b == NULL)
        return PRIDE_ERR_INVALID;
    kernel_table[path][dt].op[op == PRIDE_AVG ? PRIDE_SUM : op](out, a, b, count);
    return PRIDE_OK;
}

int pride_avg_finish_path(pride_kpath_t path, void *buf, size_t count, pride_dtype_t dt,
                          int nranks)
{
    int st = pride_reduce_check(dt, PRIDE_AVG);
    if (st != PRIDE_OK)
        return st;
    if (!pride_kpath_supported(path))
        return PRIDE_ERR_UNSUPPORTED;
    if (nranks < 1 || (buf == NULL && count > 0))
        return PRIDE_ERR_INVALID;
    if (count > 0)
        kernel_table[path][dt].avg(buf, count, nranks);
    return PRIDE_OK;
}

/* The void entry points do nothing for what the _path forms refuse: callers check
 * dtype and op with pride_reduce_check first. */
void reduce_apply(void *inout, const void *in, size_t count, pride_dtype_t dt, pride_op_t op)
{
    (void)reduce_apply3_path(pride_kpath_active(), inout, inout, in, count, dt, op);
}

void reduce_apply3(void *out, const void *a, const void *b, size_t count, pride_dtype_t dt,
                   pride_op_t op)
{
    (void)reduce_apply3_path(pride_kpath_active(), out, a, b, count, dt, op);
}

void pride_avg_finish(void *buf, size_t count, pride_dtype_t dt, int nranks)
{
    (void)pride_avg_finish_path(pride_kpath_active(), buf, count, dt, nranks);
}
