/*
 * The vote's internal baseline: the majority as Distributed Lion's public code
 * computes it, by allgathering every rank's whole 1-bit vector and counting locally
 * ((P-1) bits received per element, linear in P). pride-bench runs it beside
 * pride_vote so the bit-sliced ring's saving is measured, not claimed.
 */
#ifndef PRIDE_VOTE_INTERNAL_H
#define PRIDE_VOTE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pride/vote.h"

/* Same contract as pride_vote (same result bit for bit; sendbits == recvbits allowed),
   collective kind PRIDE_COLL_VOTE_ALLGATHER. */
int pride_vote_allgather(pride_context_t *ctx, const uint64_t *sendbits, uint64_t *recvbits,
                         size_t nbits, pride_tie_t tie);

#endif
