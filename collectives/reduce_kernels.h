/*
 * Element-wise reduction kernels for every dtype and op. float16 and bfloat16 are
 * widened to float32, reduced, and rounded back (round to nearest even) per call.
 * (Named reduce_apply, not pride_reduce: that is the public reduce collective.)
 * AVG reduces as SUM; the owner of the final value divides once (pride_avg_finish),
 * so every rank ends with bit-identical results.
 */
#ifndef PRIDE_REDUCE_KERNELS_H
#define PRIDE_REDUCE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "pride/types.h"

/* PRIDE_OK, or PRIDE_ERR_INVALID for an unknown dtype/op or AVG on an integer type. */
int pride_reduce_check(pride_dtype_t dt, pride_op_t op);
/* inout[i] = inout[i] op in[i] for i < count (AVG: sum). */
void reduce_apply(void *inout, const void *in, size_t count, pride_dtype_t dt, pride_op_t op);
/* out[i] = a[i] op b[i]; out may alias a or b. */
void reduce_apply3(void *out, const void *a, const void *b, size_t count, pride_dtype_t dt,
                   pride_op_t op);
/* buf[i] /= nranks (floating types; AVG's last step). */
void pride_avg_finish(void *buf, size_t count, pride_dtype_t dt, int nranks);

/* IEEE half and bfloat16 conversions (round to nearest even, NaN kept NaN). */
float pride_half_to_float(uint16_t h);
uint16_t pride_float_to_half(float f);
float pride_bf16_to_float(uint16_t h);
uint16_t pride_float_to_bf16(float f);

#endif
