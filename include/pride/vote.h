/**
 * @file pride/vote.h
 * @brief Majority vote and sign count over packed sign vectors.
 *
 * Packed sign vectors: bit i lives in word i/64 at bit i%64 (LSB first); a set bit
 * means "positive" (+1), a clear bit "negative" (-1). Input bits past nbits in the
 * last word are ignored; output bits past nbits are zero. A rank sends about
 * 2 bits per element at 4 ranks and 3 at 8 (bit-sliced ring reduce-scatter plus a
 * 1-bit allgather), instead of 32 for a float32 allreduce.
 */
#ifndef PRIDE_VOTE_H
#define PRIDE_VOTE_H

#include <stddef.h>
#include <stdint.h>

#include "pride/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Ties (even nranks, exactly half set) must resolve the same way on every rank, or
 * replicas drift apart: NEGATIVE and POSITIVE are what they say; ALTERNATE gives
 * element i positive when i is even, negative when odd (unbiased, deterministic).
 */
typedef enum { PRIDE_TIE_NEGATIVE, PRIDE_TIE_POSITIVE, PRIDE_TIE_ALTERNATE } pride_tie_t;

/**
 * @brief recvbits[i] = 1 iff more than half of the ranks set bit i (ties: the tie rule).
 * sendbits and recvbits hold ceil(nbits/64) words; they may be the same buffer.
 */
int pride_vote(pride_context_t *ctx, const uint64_t *sendbits, uint64_t *recvbits, size_t nbits,
               pride_tie_t tie);

/**
 * @brief counts[i] = number of ranks whose bit i is set (0..nranks).
 * @return PRIDE_ERR_UNSUPPORTED beyond 255 ranks
 */
int pride_vote_count(pride_context_t *ctx, const uint64_t *sendbits, uint8_t *counts,
                     size_t nbits);

#ifdef __cplusplus
}
#endif
#endif
