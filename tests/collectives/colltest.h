/*
 * What the collective tests share: inputs every rank can compute for every other rank
 * (so each computes the reference itself), the reference reductions, and comparison.
 *
 * Input element i of rank r is a function of (seed, r, i) only, chosen per op so the
 * exact result fits every dtype: SUM/AVG small integers (|x| <= 4), PROD mostly +-1
 * with a 2 from at most three ranks, MIN/MAX a wider spread (eighths for float16,
 * float32, float64). Everything but AVG must then match exactly, on every dtype. AVG
 * must be within 2 units in the last place of the type (relative) of the exact mean.
 */
#ifndef PRIDE_COLLTEST_H
#define PRIDE_COLLTEST_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "reduce_kernels.h"

#define CT_NDTYPES 10
#define CT_NOPS 5

static inline int ct_is_float(pride_dtype_t dt)
{
    return dt >= PRIDE_FLOAT16;
}

static inline int ct_is_signed(pride_dtype_t dt)
{
    return dt == PRIDE_INT8 || dt == PRIDE_INT32 || dt == PRIDE_INT64 || ct_is_float(dt);
}

static inline int ct_valid(pride_dtype_t dt, pride_op_t op)
{
    return op != PRIDE_AVG || ct_is_float(dt);
}

static inline uint64_t ct_mix(uint64_t seed, int rank, size_t i)
{
    uint64_t s = seed ^ ((uint64_t)(rank + 1) * UINT64_C(0xD1B54A32D192ED03)) ^
                 ((uint64_t)i * UINT64_C(0x9E3779B97F4A7C15));
    return harness_rand(&s);
}

/* Element i of rank r's input, as a double exactly representable in dt. */
static inline double ct_value(uint64_t seed, pride_dtype_t dt, pride_op_t op, int r, size_t i)
{
    uint64_t u = ct_mix(seed, r, i);
    int sgn = ct_is_signed(dt);
    switch (op) {
    case PRIDE_SUM:
    case PRIDE_AVG:
        return sgn ? (double)(int)(u % 9) - 4 : (double)(u % 9);
    case PRIDE_PROD:
        if (r < 3 && u % 4 == 0)
            return 2;
        return sgn && (u & 16) ? -1 : 1;
    default:
        if (dt == PRIDE_FLOAT16 || dt == PRIDE_FLOAT32 || dt == PRIDE_FLOAT64)
            return ((double)(int)(u % 1601) - 800) / 8;
        return sgn ? (double)(int)(u % 201) - 100 : (double)(u % 201);
    }
}

static inline void ct_store(void *buf, pride_dtype_t dt, size_t i, double v)
{
    switch (dt) {
    case PRIDE_INT8: ((int8_t *)buf)[i] = (int8_t)v; break;
    case PRIDE_UINT8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
    case PRIDE_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case PRIDE_UINT32: ((uint32_t *)buf)[i] = (uint32_t)v; break;
    case PRIDE_INT64: ((int64_t *)buf)[i] = (int64_t)v; break;
    case PRIDE_UINT64: ((uint64_t *)buf)[i] = (uint64_t)v; break;
    case PRIDE_FLOAT16: ((uint16_t *)buf)[i] = pride_float_to_half((float)v); break;
    case PRIDE_BFLOAT16: ((uint16_t *)buf)[i] = pride_float_to_bf16((float)v); break;
    case PRIDE_FLOAT32: ((float *)buf)[i] = (float)v; break;
    case PRIDE_FLOAT64: ((double *)buf)[i] = v; break;
    }
}

static inline double ct_load(const void *buf, pride_dtype_t dt, size_t i)
{
    switch (dt) {
    case PRIDE_INT8: return ((const int8_t *)buf)[i];
    case PRIDE_UINT8: return ((const uint8_t *)buf)[i];
    case PRIDE_INT32: return ((const int32_t *)buf)[i];
    case PRIDE_UINT32: return ((const uint32_t *)buf)[i];
    case PRIDE_INT64: return (double)((const int64_t *)buf)[i];
    case PRIDE_UINT64: return (double)((const uint64_t *)buf)[i];
    case PRIDE_FLOAT16: return pride_half_to_float(((const uint16_t *)buf)[i]);
    case PRIDE_BFLOAT16: return pride_bf16_to_float(((const uint16_t *)buf)[i]);
    case PRIDE_FLOAT32: return ((const float *)buf)[i];
    case PRIDE_FLOAT64: return ((const double *)buf)[i];
    }
    return NAN;
}

/* Fill n elements of rank r's input starting at element first. */
static inline void ct_fill(void *buf, uint64_t seed, pride_dtype_t dt, pride_op_t op, int r,
                           size_t first, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ct_store(buf, dt, i, ct_value(seed, dt, op, r, first + i));
}

/* The exact reduction over ranks 0..P-1 of element i (AVG: the exact mean). */
static inline double ct_expect(uint64_t seed, pride_dtype_t dt, pride_op_t op, int P, size_t i)
{
    double acc = ct_value(seed, dt, op, 0, i);
    for (int r = 1; r < P; r++) {
        double x = ct_value(seed, dt, op, r, i);
        switch (op) {
        case PRIDE_SUM:
        case PRIDE_AVG: acc += x; break;
        case PRIDE_PROD: acc *= x; break;
        case PRIDE_MIN: acc = x < acc ? x : acc; break;
        case PRIDE_MAX: acc = x > acc ? x : acc; break;
        }
    }
    return op == PRIDE_AVG ? acc / P : acc;
}

/* Relative bound for AVG: 2 units in the last place of dt. */
static inline double ct_avg_tol(pride_dtype_t dt)
{
    switch (dt) {
    case PRIDE_FLOAT16: return ldexp(1, -9);
    case PRIDE_BFLOAT16: return ldexp(1, -6);
    case PRIDE_FLOAT32: return ldexp(1, -22);
    default: return ldexp(1, -51);
    }
}

/* Does got (n elements, element i standing for global element first + i) hold the
   reduction over P ranks? Returns the first bad index + 1, or 0. */
static inline size_t ct_check_reduced(const void *got, uint64_t seed, pride_dtype_t dt,
                                      pride_op_t op, int P, size_t first, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double e = ct_expect(seed, dt, op, P, first + i), g = ct_load(got, dt, i);
        if (op == PRIDE_AVG ? fabs(g - e) > ct_avg_tol(dt) * fabs(e) : g != e) {
            fprintf(stderr, "element %zu: got %.17g, expected %.17g\n", first + i, g, e);
            return i + 1;
        }
    }
    return 0;
}

/* Does got hold rank r's input elements first .. first+n-1, bit for bit? */
static inline size_t ct_check_input(const void *got, uint64_t seed, pride_dtype_t dt,
                                    pride_op_t op, int r, size_t first, size_t n)
{
    size_t es = pride_dtype_size(dt);
    char e[8];
    for (size_t i = 0; i < n; i++) {
        ct_store(e, dt, 0, ct_value(seed, dt, op, r, first + i));
        if (memcmp((const char *)got + i * es, e, es) != 0) {
            fprintf(stderr, "element %zu of rank %d's data: got %.17g, expected %.17g\n",
                    first + i, r, ct_load(got, dt, i), ct_load(e, dt, 0));
            return i + 1;
        }
    }
    return 0;
}

/* FNV-1a, to compare results across ranks. */
static inline uint64_t ct_hash(uint64_t h, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * UINT64_C(0x100000001B3);
    return h;
}

/* Every rank holds the same h? (allgather of the hashes) */
static inline int ct_same_everywhere(pride_context_t *ctx, uint64_t h)
{
    int P = pride_nranks(ctx);
    uint64_t *all = calloc((size_t)P, sizeof *all);
    HCHECK(all);
    HCHECK_OK(ctx, pride_allgather(ctx, &h, all, 1, PRIDE_UINT64));
    int same = 1;
    for (int r = 0; r < P; r++)
        same &= all[r] == h;
    free(all);
    return same;
}

static inline void *ct_alloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    HCHECK(p);
    return p;
}

#endif
