/**
 * @file pride/types.h
 * @brief Element types and reduction operators.
 */
#ifndef PRIDE_TYPES_H
#define PRIDE_TYPES_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Element types. FLOAT16 and BFLOAT16 are stored as 16-bit words and reduced in float32. */
typedef enum {
    PRIDE_INT8,
    PRIDE_UINT8,
    PRIDE_INT32,
    PRIDE_UINT32,
    PRIDE_INT64,
    PRIDE_UINT64,
    PRIDE_FLOAT16,
    PRIDE_BFLOAT16,
    PRIDE_FLOAT32,
    PRIDE_FLOAT64
} pride_dtype_t;

/** Reduction operators. AVG is defined for floating types only. */
typedef enum { PRIDE_SUM, PRIDE_PROD, PRIDE_MIN, PRIDE_MAX, PRIDE_AVG } pride_op_t;

/**
 * @brief Size in bytes of one element of @p dt.
 * @return the size, or 0 for a value that is not a pride_dtype_t
 */
size_t pride_dtype_size(pride_dtype_t dt);

#ifdef __cplusplus
}
#endif
#endif
