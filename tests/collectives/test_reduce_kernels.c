/*
 * Tests of the reduction kernels (no transport): every dtype x op on every code path
 * this CPU runs, bit for bit against a scalar reference written here from the
 * definitions (libm's ldexp/frexp/rint for float16/bfloat16, C arithmetic for the
 * rest), at counts that hit every vector tail, out of place and with out aliasing a
 * or b; each SIMD path is also compared with the portable path directly. Plus the
 * float16/bfloat16 conversions (all 65536 patterns, rounding cases, a sweep over
 * float32 patterns), the NaN and signed-zero rules of MIN/MAX, AVG's finish, refused
 * arguments, and PRIDE_KERNELS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pride/pride.h"
#include "reduce_kernels.h"
#include "reduce_kernels_impl.h"

#define NDTYPES (PRIDE_FLOAT64 + 1)
#define NOPS (PRIDE_AVG + 1)
#define MAXCOUNT 1000003
#define GUARD 64 /* bytes after every output that must stay untouched */
#define GUARD_BYTE 0xa5

static const size_t counts[] = {0, 1, 7, 15, 16, 17, 31, 33, 63, 64, 65, 1000, MAXCOUNT};

static const char *dt_name[NDTYPES] = {"int8",   "uint8",   "int32",    "uint32",  "int64",
                                       "uint64", "float16", "bfloat16", "float32", "float64"};
static const char *op_name[NOPS] = {"sum", "prod", "min", "max", "avg"};

static size_t dt_size(pride_dtype_t dt)
{
    static const size_t size[NDTYPES] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
    return size[dt];
}

static int dt_is_float(pride_dtype_t dt) { return dt >= PRIDE_FLOAT16; }

/* ---- deterministic random numbers ------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* ---- reference conversions and element rules ------------------------------------- */

static uint32_t bits32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* A 16-bit float format: p significand bits (with the hidden one), exponent bits. */
struct fmt16 {
    int p, ebits;
    uint16_t qnan;
};
static const struct fmt16 HALF = {11, 5, 0x7e00};
static const struct fmt16 BF16 = {8, 8, 0x7fc0};

static int fmt_bias(const struct fmt16 *f) { return (1 << (f->ebits - 1)) - 1; }
static uint16_t fmt_inf(const struct fmt16 *f)
{
    return (uint16_t)(((1u << f->ebits) - 1) << (f->p - 1));
}

static int ref16_isnan(const struct fmt16 *f, uint16_t h) { return (h & 0x7fff) > fmt_inf(f); }

static float ref16_value(const struct fmt16 *f, uint16_t h)
{
    int mbits = f->p - 1, emax_field = (1 << f->ebits) - 1;
    int e = (h >> mbits) & emax_field, m = h & ((1 << mbits) - 1);
    float v;
    if (e == emax_field)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexpf((float)m, 1 - fmt_bias(f) - mbits);
    else
        v = ldexpf((float)(m + (1 << mbits)), e - fmt_bias(f) - mbits);
    return (h & 0x8000) ? -v : v;
}

/* Round a float that is not NaN to the format, to nearest even, from its value. */
static uint16_t ref16_round(const struct fmt16 *f, float x)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs((double)x), q;
    int emin = 1 - fmt_bias(f), e;
    if (isinf(a))
        return sign | fmt_inf(f);
    if (a < ldexp(1, emin)) /* subnormal: count units of 2^(emin-p+1); 2^(p-1) units
                               is the smallest normal, which encodes the same way */
        return (uint16_t)(sign | (uint16_t)rint(ldexp(a, f->p - 1 - emin)));
    q = rint(ldexp(frexp(a, &e), f->p)); /* a = m 2^e, m in [1/2, 1) */
    e -= 1;
    if (q == ldexp(1, f->p)) {
        q /= 2;
        e++;
    }
    if (e > fmt_bias(f))
        return sign | fmt_inf(f);
    return (uint16_t)(sign | (e + fmt_bias(f)) << (f->p - 1) |
                      ((uint32_t)q - (1u << (f->p - 1))));
}

static uint16_t ref16_result(const struct fmt16 *f, float r)
{
    return isnan(r) ? f->qnan : ref16_round(f, r);
}

/* MIN/MAX of two values of one type: NaN in, NaN out; -0 below +0 (xneg0: x is -0).
 * Returns 0 to pick x, 1 to pick y, 2 for NaN. */
static int ref_pick(double x, double y, int xneg0, int is_max)
{
    if (isnan(x) || isnan(y))
        return 2;
    if (x == y && x == 0)
        return is_max ? (xneg0 ? 1 : 0) : (xneg0 ? 0 : 1);
    if (x == y)
        return 0;
    return ((x < y) != is_max) ? 0 : 1;
}

static void ref_elem(pride_dtype_t dt, pride_op_t op, const void *pa, const void *pb, void *po)
{
    int mm = op == PRIDE_MIN || op == PRIDE_MAX, is_max = op == PRIDE_MAX;
#define REF_INT(T)                                                                        \
    do {                                                                                  \
        T x, y, r;                                                                        \
        memcpy(&x, pa, sizeof x);                                                         \
        memcpy(&y, pb, sizeof y);                                                         \
        if (op == PRIDE_SUM)                                                              \
            r = (T)((uint64_t)x + (uint64_t)y);                                           \
        else if (op == PRIDE_PROD)                                                        \
            r = (T)((uint64_t)x * (uint64_t)y);                                           \
        else                                                                              \
            r = ((x < y) != is_max) ? x : y;                                              \
        memcpy(po, &r, sizeof r);                                                         \
    } while (0)
    switch (dt) {
    case PRIDE_INT8:
        REF_INT(int8_t);
        return;
    case PRIDE_UINT8:
        REF_INT(uint8_t);
        return;
    case PRIDE_INT32:
        REF_INT(int32_t);
        return;
    case PRIDE_UINT32:
        REF_INT(uint32_t);
        return;
    case PRIDE_INT64:
        REF_INT(int64_t);
        return;
    case PRIDE_UINT64:
        REF_INT(uint64_t);
        return;
    case PRIDE_FLOAT16:
    case PRIDE_BFLOAT16: {
        const struct fmt16 *f = dt == PRIDE_FLOAT16 ? &HALF : &BF16;
        uint16_t hx, hy, r;
        memcpy(&hx, pa, 2);
        memcpy(&hy, pb, 2);
        float x = ref16_value(f, hx), y = ref16_value(f, hy);
        if (mm) {
            int k = ref_pick(x, y, hx == 0x8000, is_max);
            r = k == 2 ? f->qnan : k ? hy : hx;
        } else {
            r = ref16_result(f, op == PRIDE_PROD ? x * y : x + y);
        }
        memcpy(po, &r, 2);
        return;
    }
    case PRIDE_FLOAT32: {
        float x, y, r;
        memcpy(&x, pa, 4);
        memcpy(&y, pb, 4);
        if (mm) {
            int k = ref_pick(x, y, signbit(x) && x == 0, is_max);
            r = k == 2 ? NAN : k ? y : x;
        } else {
            r = op == PRIDE_PROD ? x * y : x + y;
        }
        if (isnan(r))
            r = from32(0x7fc00000u);
        memcpy(po, &r, 4);
        return;
    }
    case PRIDE_FLOAT64: {
        double x, y, r;
        uint64_t qnan = 0x7ff8000000000000u;
        memcpy(&x, pa, 8);
        memcpy(&y, pb, 8);
        if (mm) {
            int k = ref_pick(x, y, signbit(x) && x == 0, is_max);
            r = k == 2 ? NAN : k ? y : x;
        } else {
            r = op == PRIDE_PROD ? x * y : x + y;
        }
        if (isnan(r))
            memcpy(&r, &qnan, 8);
        memcpy(po, &r, 8);
        return;
    }
    }
#undef REF_INT
}

static void ref_avg_elem(pride_dtype_t dt, const void *pin, void *po, int n)
{
    if (dt == PRIDE_FLOAT16 || dt == PRIDE_BFLOAT16) {
        const struct fmt16 *f = dt == PRIDE_FLOAT16 ? &HALF : &BF16;
        uint16_t h;
        memcpy(&h, pin, 2);
        h = ref16_result(f, ref16_value(f, h) / (float)n);
        memcpy(po, &h, 2);
    } else if (dt == PRIDE_FLOAT32) {
        float x;
        memcpy(&x, pin, 4);
        x = x / (float)n;
        if (isnan(x))
            x = from32(0x7fc00000u);
        memcpy(po, &x, 4);
    } else {
        double x;
        uint64_t qnan = 0x7ff8000000000000u;
        memcpy(&x, pin, 8);
        x = x / (double)n;
        if (isnan(x))
            memcpy(&x, &qnan, 8);
        memcpy(po, &x, 8);
    }
}

/* ---- test data -------------------------------------------------------------------- */

static const uint32_t f32_specials[] = {
    0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7fc00001,
    0x7f800001, 0xffbfffff, 0x7f7fffff, 0xff7fffff, 0x00000001, 0x807fffff, 0x3f800000,
    0xbf800000, 0x00800000};
static const uint64_t f64_specials[] = {
    0x0000000000000000, 0x8000000000000000, 0x7ff0000000000000, 0xfff0000000000000,
    0x7ff8000000000000, 0xfff8000000000000, 0x7ff8000000000001, 0x7ff0000000000001,
    0x7fefffffffffffff, 0xffefffffffffffff, 0x0000000000000001, 0x800fffffffffffff,
    0x3ff0000000000000, 0xbff0000000000000, 0x0010000000000000};

/* Random elements: integers uniform; 16-bit floats half raw patterns (every class
 * appears), half moderate values; float32/64 mostly moderate values of every sign
 * and scale, with raw patterns and specials (NaNs of several payloads, infinities,
 * signed zeros, extremes, subnormals) mixed in. */
static void fill_random(pride_dtype_t dt, void *buf, size_t n)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < n; i++, p += dt_size(dt)) {
        uint64_t r = rng(), pick = r % 100;
        r >>= 8;
        switch (dt) {
        case PRIDE_FLOAT16:
        case PRIDE_BFLOAT16: {
            uint16_t h = (uint16_t)r;
            if (pick >= 50) { /* sign, exponent near the middle, random mantissa */
                int mbits = dt == PRIDE_FLOAT16 ? 10 : 7, bias = dt == PRIDE_FLOAT16 ? 15 : 127;
                int e = bias - 6 + (int)((r >> 16) % 12);
                h = (uint16_t)((h & 0x8000) | e << mbits | (h & ((1 << mbits) - 1)));
            }
            memcpy(p, &h, 2);
            break;
        }
        case PRIDE_FLOAT32: {
            uint32_t u = (uint32_t)r;
            if (pick < 5)
                u = f32_specials[(r >> 32) % (sizeof f32_specials / sizeof *f32_specials)];
            else if (pick >= 20)
                u = (u & 0x807fffffu) | (uint32_t)(117 + (r >> 32) % 20) << 23;
            memcpy(p, &u, 4);
            break;
        }
        case PRIDE_FLOAT64: {
            uint64_t u = rng();
            if (pick < 5)
                u = f64_specials[r % (sizeof f64_specials / sizeof *f64_specials)];
            else if (pick >= 20)
                u = (u & 0x800fffffffffffffu) | (uint64_t)(1013 + r % 20) << 52;
            memcpy(p, &u, 8);
            break;
        }
        default: {
            uint64_t u = rng();
            memcpy(p, &u, dt_size(dt));
            break;
        }
        }
    }
}

/* A buffer of count elements followed by GUARD guard bytes, starting one element past
 * a 64-byte boundary so no path can count on aligned data. */
struct tbuf {
    unsigned char *mem, *p;
    size_t bytes;
};

static void tbuf_init(struct tbuf *t, pride_dtype_t dt, size_t count)
{
    t->bytes = count * dt_size(dt);
    t->mem = aligned_alloc(64, ((t->bytes + dt_size(dt) + GUARD) / 64 + 1) * 64);
    assert_non_null(t->mem);
    t->p = t->mem + dt_size(dt);
}

static void tbuf_set(struct tbuf *t, const void *src)
{
    memcpy(t->p, src, t->bytes);
    memset(t->p + t->bytes, GUARD_BYTE, GUARD);
}

static void tbuf_check(const struct tbuf *t, const void *expect, const char *what)
{
    if (memcmp(t->p, expect, t->bytes) != 0) {
        size_t i = 0;
        while (t->p[i] == ((const unsigned char *)expect)[i])
            i++;
        fail_msg("%s: first differing byte %zu of %zu", what, i, t->bytes);
    }
    for (size_t i = 0; i < GUARD; i++)
        if (t->p[t->bytes + i] != GUARD_BYTE)
            fail_msg("%s: wrote past the end (guard byte %zu)", what, i);
}

/* ---- every dtype x op x path x count x form --------------------------------------- */

static void check_reduce_all_forms(pride_dtype_t dt, pride_op_t op, const void *a,
                                   const void *b, const void *expect, size_t count)
{
    struct tbuf out, pout, ta, tb;
    char what[160];
    tbuf_init(&out, dt, count);
    tbuf_init(&pout, dt, count);
    tbuf_init(&ta, dt, count);
    tbuf_init(&tb, dt, count);
    tbuf_set(&ta, a);
    tbuf_set(&tb, b);

    tbuf_set(&pout, expect);
    assert_int_equal(reduce_apply3_path(PRIDE_KPATH_PORTABLE, pout.p, ta.p, tb.p, count, dt, op),
                     PRIDE_OK);
    for (int p = 0; p < PRIDE_KPATH_COUNT; p++) {
        if (!pride_kpath_supported((pride_kpath_t)p))
            continue;
        snprintf(what, sizeof what, "%s %s path %s count %zu", dt_name[dt], op_name[op],
                 pride_kpath_name((pride_kpath_t)p), count);
        /* out of place; inputs untouched */
        tbuf_set(&out, expect);
        memset(out.p, 0x5a, out.bytes);
        assert_int_equal(reduce_apply3_path((pride_kpath_t)p, out.p, ta.p, tb.p, count, dt, op),
                         PRIDE_OK);
        tbuf_check(&out, expect, what);
        tbuf_check(&pout, out.p, what); /* the SIMD path equals the portable one */
        tbuf_check(&ta, a, what);
        tbuf_check(&tb, b, what);
        /* out == a */
        tbuf_set(&out, a);
        assert_int_equal(reduce_apply3_path((pride_kpath_t)p, out.p, out.p, tb.p, count, dt, op),
                         PRIDE_OK);
        tbuf_check(&out, expect, what);
        /* out == b */
        tbuf_set(&out, b);
        assert_int_equal(reduce_apply3_path((pride_kpath_t)p, out.p, ta.p, out.p, count, dt, op),
                         PRIDE_OK);
        tbuf_check(&out, expect, what);
    }
    /* the public entry points, on the dispatched path */
    snprintf(what, sizeof what, "%s %s reduce_apply count %zu", dt_name[dt], op_name[op], count);
    tbuf_set(&out, a);
    reduce_apply(out.p, tb.p, count, dt, op);
    tbuf_check(&out, expect, what);
    tbuf_set(&out, b);
    reduce_apply3(out.p, ta.p, out.p, count, dt, op);
    tbuf_check(&out, expect, what);
    free(out.mem);
    free(pout.mem);
    free(ta.mem);
    free(tb.mem);
}

static void test_reduce_every_dtype_op(void **state)
{
    (void)state;
    unsigned char *a = malloc(MAXCOUNT * 8), *b = malloc(MAXCOUNT * 8),
                  *expect = malloc(MAXCOUNT * 8);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(expect);
    for (int dt = 0; dt < NDTYPES; dt++) {
        size_t sz = dt_size((pride_dtype_t)dt);
        fill_random((pride_dtype_t)dt, a, MAXCOUNT);
        fill_random((pride_dtype_t)dt, b, MAXCOUNT);
        for (int op = 0; op < NOPS; op++) {
            if (op == PRIDE_AVG && !dt_is_float((pride_dtype_t)dt))
                continue;
            for (size_t i = 0; i < MAXCOUNT; i++)
                ref_elem((pride_dtype_t)dt, (pride_op_t)op, a + i * sz, b + i * sz,
                         expect + i * sz);
            for (size_t c = 0; c < sizeof counts / sizeof *counts; c++)
                check_reduce_all_forms((pride_dtype_t)dt, (pride_op_t)op, a, b, expect,
                                       counts[c]);
        }
    }
    free(a);
    free(b);
    free(expect);
}

/* Every pair of special values, both orders, every floating dtype and op. */
static void test_reduce_special_pairs(void **state)
{
    (void)state;
    enum { NS = 16 };
    static const uint16_t f16_specials[NS] = {0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0xfe00,
                                              0x7e01, 0x7c01, 0x7bff, 0xfbff, 0x0001, 0x83ff,
                                              0x3c00, 0xbc00, 0x0400, 0x3555};
    static const uint16_t bf16_specials[NS] = {0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc0,
                                               0x7fc1, 0x7f81, 0x7f7f, 0xff7f, 0x0001, 0x807f,
                                               0x3f80, 0xbf80, 0x0080, 0x3eab};
    unsigned char a[NS * NS * 8], b[NS * NS * 8], expect[NS * NS * 8];
    for (int dt = PRIDE_FLOAT16; dt <= PRIDE_FLOAT64; dt++) {
        size_t sz = dt_size((pride_dtype_t)dt);
        for (int i = 0; i < NS; i++) {
            for (int j = 0; j < NS; j++) {
                const void *x, *y;
                if (dt == PRIDE_FLOAT16) {
                    x = &f16_specials[i];
                    y = &f16_specials[j];
                } else if (dt == PRIDE_BFLOAT16) {
                    x = &bf16_specials[i];
                    y = &bf16_specials[j];
                } else if (dt == PRIDE_FLOAT32) {
                    x = &f32_specials[i];
                    y = &f32_specials[j];
                } else {
                    x = &f64_specials[i % 15];
                    y = &f64_specials[j % 15];
                }
                memcpy(a + (size_t)(i * NS + j) * sz, x, sz);
                memcpy(b + (size_t)(i * NS + j) * sz, y, sz);
            }
        }
        for (int op = 0; op < NOPS; op++) {
            for (size_t k = 0; k < NS * NS; k++)
                ref_elem((pride_dtype_t)dt, (pride_op_t)op, a + k * sz, b + k * sz,
                         expect + k * sz);
            check_reduce_all_forms((pride_dtype_t)dt, (pride_op_t)op, a, b, expect, NS * NS);
        }
    }
}

/* The rules spelled out, on the dispatched path: independent of the reference. */
static void test_minmax_nan_and_zero_rules(void **state)
{
    (void)state;
    float x[4] = {-0.0f, 0.0f, NAN, 1.0f}, y[4] = {0.0f, -0.0f, 1.0f, from32(0xffc00001u)};
    float r[4];
    reduce_apply3(r, x, y, 4, PRIDE_FLOAT32, PRIDE_MIN);
    assert_int_equal(bits32(r[0]), 0x80000000u);
    assert_int_equal(bits32(r[1]), 0x80000000u);
    assert_int_equal(bits32(r[2]), 0x7fc00000u);
    assert_int_equal(bits32(r[3]), 0x7fc00000u);
    reduce_apply3(r, x, y, 4, PRIDE_FLOAT32, PRIDE_MAX);
    assert_int_equal(bits32(r[0]), 0);
    assert_int_equal(bits32(r[1]), 0);
    assert_int_equal(bits32(r[2]), 0x7fc00000u);
    assert_int_equal(bits32(r[3]), 0x7fc00000u);
    /* SUM: NaN of any payload or sign, and inf - inf, give the canonical NaN */
    float s[2] = {INFINITY, from32(0xffc00001u)}, t[2] = {-INFINITY, from32(0x7f800002u)};
    reduce_apply(s, t, 2, PRIDE_FLOAT32, PRIDE_SUM);
    assert_int_equal(bits32(s[0]), 0x7fc00000u);
    assert_int_equal(bits32(s[1]), 0x7fc00000u);
    uint16_t h[3] = {0x8000, 0x7c01, 0x3c00}, g[3] = {0x0000, 0x3c00, 0xfe00};
    reduce_apply(h, g, 3, PRIDE_FLOAT16, PRIDE_MIN);
    assert_int_equal(h[0], 0x8000);
    assert_int_equal(h[1], 0x7e00);
    assert_int_equal(h[2], 0x7e00);
    /* integers wrap */
    int8_t i8[2] = {127, -128}, j8[2] = {1, -1};
    reduce_apply(i8, j8, 2, PRIDE_INT8, PRIDE_SUM);
    assert_int_equal(i8[0], -128);
    assert_int_equal(i8[1], 127);
    int64_t i64 = INT64_MAX, j64 = 2;
    reduce_apply(&i64, &j64, 1, PRIDE_INT64, PRIDE_PROD);
    assert_int_equal(i64, -2);
}

static void test_avg_finish(void **state)
{
    (void)state;
    static const int nranks[] = {1, 3, 7, 1000};
    enum { N = 4099 };
    unsigned char *in = malloc(N * 8), *expect = malloc(N * 8);
    struct tbuf t;
    char what[128];
    assert_non_null(in);
    assert_non_null(expect);
    for (int dt = PRIDE_FLOAT16; dt <= PRIDE_FLOAT64; dt++) {
        size_t sz = dt_size((pride_dtype_t)dt);
        fill_random((pride_dtype_t)dt, in, N);
        for (size_t k = 0; k < sizeof nranks / sizeof *nranks; k++) {
            for (size_t i = 0; i < N; i++)
                ref_avg_elem((pride_dtype_t)dt, in + i * sz, expect + i * sz, nranks[k]);
            for (size_t c = 0; c < sizeof counts / sizeof *counts && counts[c] <= N; c++) {
                tbuf_init(&t, (pride_dtype_t)dt, counts[c]);
                for (int p = 0; p < PRIDE_KPATH_COUNT; p++) {
                    if (!pride_kpath_supported((pride_kpath_t)p))
                        continue;
                    snprintf(what, sizeof what, "avg %s /%d path %s count %zu", dt_name[dt],
                             nranks[k], pride_kpath_name((pride_kpath_t)p), counts[c]);
                    tbuf_set(&t, in);
                    assert_int_equal(pride_avg_finish_path((pride_kpath_t)p, t.p, counts[c],
                                                           (pride_dtype_t)dt, nranks[k]),
                                     PRIDE_OK);
                    tbuf_check(&t, expect, what);
                }
                tbuf_set(&t, in);
                pride_avg_finish(t.p, counts[c], (pride_dtype_t)dt, nranks[k]);
                tbuf_check(&t, expect, "pride_avg_finish");
                free(t.mem);
            }
        }
    }
    free(in);
    free(expect);
}

/* ---- refused arguments ------------------------------------------------------------ */

static void test_check_and_refusals(void **state)
{
    (void)state;
    int32_t buf[4] = {1, 2, 3, 4}, in[4] = {5, 6, 7, 8};
    float fb[2] = {3.0f, 6.0f};
    for (int dt = 0; dt < NDTYPES; dt++)
        for (int op = 0; op < NOPS; op++)
            assert_int_equal(pride_reduce_check((pride_dtype_t)dt, (pride_op_t)op),
                             (op == PRIDE_AVG && !dt_is_float((pride_dtype_t)dt))
                                 ? PRIDE_ERR_INVALID
                                 : PRIDE_OK);
    assert_int_equal(pride_reduce_check((pride_dtype_t)NDTYPES, PRIDE_SUM), PRIDE_ERR_INVALID);
    assert_int_equal(pride_reduce_check((pride_dtype_t)-1, PRIDE_SUM), PRIDE_ERR_INVALID);
    assert_int_equal(pride_reduce_check(PRIDE_FLOAT32, (pride_op_t)NOPS), PRIDE_ERR_INVALID);
    assert_int_equal(pride_reduce_check(PRIDE_FLOAT32, (pride_op_t)-1), PRIDE_ERR_INVALID);

    /* the void entry points leave memory alone on what the check refuses */
    reduce_apply(buf, in, 4, PRIDE_INT32, PRIDE_AVG);
    reduce_apply(buf, in, 4, (pride_dtype_t)42, PRIDE_SUM);
    reduce_apply3(buf, buf, in, 4, PRIDE_INT32, (pride_op_t)9);
    pride_avg_finish(buf, 4, PRIDE_INT32, 2);
    pride_avg_finish(fb, 2, PRIDE_FLOAT32, 0);
    pride_avg_finish(fb, 2, PRIDE_FLOAT32, -3);
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[3], 4);
    assert_true(fb[0] == 3.0f && fb[1] == 6.0f);

    assert_int_equal(reduce_apply3_path(PRIDE_KPATH_PORTABLE, NULL, in, in, 4, PRIDE_INT32,
                                        PRIDE_SUM),
                     PRIDE_ERR_INVALID);
    assert_int_equal(reduce_apply3_path(PRIDE_KPATH_PORTABLE, NULL, NULL, NULL, 0, PRIDE_INT32,
                                        PRIDE_SUM),
                     PRIDE_OK);
    assert_int_equal(pride_avg_finish_path(PRIDE_KPATH_PORTABLE, fb, 2, PRIDE_INT8, 2),
                     PRIDE_ERR_INVALID);
    assert_int_equal(pride_avg_finish_path(PRIDE_KPATH_PORTABLE, NULL, 2, PRIDE_FLOAT32, 2),
                     PRIDE_ERR_INVALID);
    assert_int_equal(reduce_apply3_path((pride_kpath_t)PRIDE_KPATH_COUNT, buf, buf, in, 4,
                                        PRIDE_INT32, PRIDE_SUM),
                     PRIDE_ERR_UNSUPPORTED);
    assert_int_equal(reduce_apply3_path((pride_kpath_t)-1, buf, buf, in, 4, PRIDE_INT32,
                                        PRIDE_SUM),
                     PRIDE_ERR_UNSUPPORTED);
    assert_int_equal(pride_kpath_supported((pride_kpath_t)PRIDE_KPATH_COUNT), 0);
    assert_int_equal(pride_kpath_supported(PRIDE_KPATH_PORTABLE), 1);
    assert_string_equal(pride_kpath_name((pride_kpath_t)PRIDE_KPATH_COUNT), "unknown");
    assert_int_equal(buf[0], 1);
}

/* ---- conversions ------------------------------------------------------------------ */

static void check_all_16bit_patterns(const struct fmt16 *f, float (*to_float)(uint16_t),
                                     uint16_t (*from_float)(float))
{
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float v = to_float(h);
        if (ref16_isnan(f, h)) {
            assert_true(isnan(v));
            assert_int_equal(signbit(v) != 0, (h & 0x8000) != 0);
        } else {
            float r = ref16_value(f, h);
            assert_int_equal(bits32(v), bits32(r));
        }
        /* every pattern comes back exactly: a NaN keeps its payload */
        assert_int_equal(from_float(v), h);
    }
}

static void test_half_all_patterns(void **state)
{
    (void)state;
    check_all_16bit_patterns(&HALF, pride_half_to_float, pride_float_to_half);
}

static void test_bf16_all_patterns(void **state)
{
    (void)state;
    check_all_16bit_patterns(&BF16, pride_bf16_to_float, pride_float_to_bf16);
}

struct round_case {
    uint32_t in;
    uint16_t out;
};

static void test_float_to_half_cases(void **state)
{
    (void)state;
    static const struct round_case cases[] = {
        {0x3f800000, 0x3c00}, /* 1 */
        {0x3f801000, 0x3c00}, /* 1 + 2^-11: tie, to even (down) */
        {0x3f803000, 0x3c02}, /* 1 + 3*2^-11: tie, to even (up) */
        {0x3f801001, 0x3c01}, /* just above the tie */
        {0x3f800fff, 0x3c00}, /* just below the tie */
        {0x477fe000, 0x7bff}, /* 65504, the largest half */
        {0x477fefff, 0x7bff}, /* below 65520 */
        {0x477ff000, 0x7c00}, /* 65520: tie between 65504 and 2^16, to even: inf */
        {0x47800000, 0x7c00}, /* 65536 */
        {0x501502f9, 0x7c00}, /* 1e10 */
        {0xff7fffff, 0xfc00}, /* -FLT_MAX */
        {0x7f800000, 0x7c00}, /* inf */
        {0xff800000, 0xfc00}, /* -inf */
        {0x38800000, 0x0400}, /* 2^-14, smallest normal */
        {0x387fc000, 0x03ff}, /* largest subnormal */
        {0x387fe000, 0x0400}, /* tie above the largest subnormal: to even (0x400) */
        {0x33800000, 0x0001}, /* 2^-24, smallest subnormal */
        {0x33000000, 0x0000}, /* 2^-25: tie between 0 and 2^-24, to even */
        {0x33000001, 0x0001}, /* just above */
        {0x33c00000, 0x0002}, /* 3*2^-25: tie between 1 and 2 units, to even */
        {0x34200000, 0x0002}, /* 5*2^-25: tie between 2 and 3 units, to even */
        {0xb3000000, 0x8000}, /* -2^-25 */
        {0x00000001, 0x0000}, /* float subnormal */
        {0x80000000, 0x8000}, /* -0 */
        {0x7fc00000, 0x7e00}, /* canonical NaN */
        {0xffc00000, 0xfe00}, /* sign kept */
        {0x7f800001, 0x7e00}, /* payload only in the low bits: quiet bit set, not inf */
        {0x7f802000, 0x7c01}, /* signalling NaN whose payload survives stays as it is */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint16_t got = pride_float_to_half(from32(cases[i].in));
        if (got != cases[i].out)
            fail_msg("float 0x%08x -> half 0x%04x, want 0x%04x", cases[i].in, got,
                     cases[i].out);
    }
}

static void test_float_to_bf16_cases(void **state)
{
    (void)state;
    static const struct round_case cases[] = {
        {0x3f800000, 0x3f80}, {0x3f808000, 0x3f80}, /* tie, to even (down) */
        {0x3f818000, 0x3f82},                       /* tie, to even (up) */
        {0x3f808001, 0x3f81}, {0x3f807fff, 0x3f80}, {0x7f7f0000, 0x7f7f}, /* largest */
        {0x7f7f8000, 0x7f80},                       /* tie above the largest: inf */
        {0x7f7fffff, 0x7f80}, {0xff7fffff, 0xff80}, {0x7f800000, 0x7f80},
        {0x00010000, 0x0001}, /* smallest bf16 subnormal */
        {0x00008000, 0x0000}, /* tie, to even */
        {0x00018000, 0x0002}, /* tie, to even */
        {0x00008001, 0x0001}, {0x80000000, 0x8000}, {0x7fc00000, 0x7fc0},
        {0xffc00000, 0xffc0}, {0x7f800001, 0x7fc0}, /* low payload: quiet bit set */
        {0x7f810000, 0x7f81},                       /* payload survives */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint16_t got = pride_float_to_bf16(from32(cases[i].in));
        if (got != cases[i].out)
            fail_msg("float 0x%08x -> bf16 0x%04x, want 0x%04x", cases[i].in, got,
                     cases[i].out);
    }
}

/* Every sign/exponent/top-11-mantissa combination of float32, with low bits that
 * make exact ties, near-ties and random remainders. */
static void sweep_float_to_16(const struct fmt16 *f, uint16_t (*from_float)(float))
{
    for (uint32_t top = 0; top < (1u << 20); top++) {
        uint32_t lows[7] = {0, 1, 0x7ff, 0x800, 0x801, 0xfff, (uint32_t)rng() & 0xfff};
        for (int k = 0; k < 7; k++) {
            uint32_t x = top << 12 | lows[k];
            uint16_t got = from_float(from32(x));
            if ((x & 0x7fffffffu) > 0x7f800000u) {
                if (!ref16_isnan(f, got) || (got & 0x8000) != ((x >> 16) & 0x8000))
                    fail_msg("float 0x%08x (NaN) -> 0x%04x", x, got);
            } else if (got != ref16_round(f, from32(x))) {
                fail_msg("float 0x%08x -> 0x%04x, want 0x%04x", x, got,
                         ref16_round(f, from32(x)));
            }
        }
    }
}

static void test_float_to_half_sweep(void **state)
{
    (void)state;
    sweep_float_to_16(&HALF, pride_float_to_half);
}

static void test_float_to_bf16_sweep(void **state)
{
    (void)state;
    sweep_float_to_16(&BF16, pride_float_to_bf16);
}

/* ---- PRIDE_KERNELS ---------------------------------------------------------------- */

/* The path a fresh process picks with PRIDE_KERNELS=value (NULL: unset). */
static void active_path_with_env(const char *value, char *name, size_t len)
{
    int fds[2];
    pid_t pid;
    ssize_t got;
    int status;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        if (value)
            setenv("PRIDE_KERNELS", value, 1);
        else
            unsetenv("PRIDE_KERNELS");
        execl("/proc/self/exe", "test_reduce_kernels", "--print-kernel-path", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    got = read(fds[0], name, len - 1);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(got > 0);
    name[got] = '\0';
    name[strcspn(name, "\n")] = '\0';
}

static void test_env_selects_path(void **state)
{
    (void)state;
    char name[64];
    const char *best = "portable";
    for (int p = 0; p < PRIDE_KPATH_COUNT; p++)
        if (pride_kpath_supported((pride_kpath_t)p))
            best = pride_kpath_name((pride_kpath_t)p);
    active_path_with_env(NULL, name, sizeof name);
    assert_string_equal(name, best);
    active_path_with_env("portable", name, sizeof name);
    assert_string_equal(name, "portable");
    for (int p = 0; p < PRIDE_KPATH_COUNT; p++) {
        if (!pride_kpath_supported((pride_kpath_t)p))
            continue;
        active_path_with_env(pride_kpath_name((pride_kpath_t)p), name, sizeof name);
        assert_string_equal(name, pride_kpath_name((pride_kpath_t)p));
    }
    /* an unknown value falls back to the automatic choice (with a warning) */
    active_path_with_env("sse9", name, sizeof name);
    assert_string_equal(name, best);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--print-kernel-path") == 0) {
        printf("%s\n", pride_kpath_name(pride_kpath_active()));
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_and_refusals),
        cmocka_unit_test(test_half_all_patterns),
        cmocka_unit_test(test_bf16_all_patterns),
        cmocka_unit_test(test_float_to_half_cases),
        cmocka_unit_test(test_float_to_bf16_cases),
        cmocka_unit_test(test_float_to_half_sweep),
        cmocka_unit_test(test_float_to_bf16_sweep),
        cmocka_unit_test(test_minmax_nan_and_zero_rules),
        cmocka_unit_test(test_reduce_special_pairs),
        cmocka_unit_test(test_avg_finish),
        cmocka_unit_test(test_reduce_every_dtype_op),
        cmocka_unit_test(test_env_selects_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
