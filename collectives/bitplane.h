/*
 * Bit-sliced vote counters. A counter for 64·nwords elements is held as planes:
 * plane j (nwords words) holds bit j of every element's count, element i at bit
 * i%64 of word i/64. Adding a vote plane is a ripple of full adders on whole words;
 * the majority is a word-wide compare of the planes against a constant; the ring's
 * last step does both in one pass. Portable loops plus AVX2 / AVX-512 paths chosen
 * at run time.
 */
#ifndef PRIDE_BITPLANE_H
#define PRIDE_BITPLANE_H

#include <stddef.h>
#include <stdint.h>

#include "pride/vote.h"

/* Planes needed for counts up to k: ceil(log2(k+1)); 0 for k = 0. */
int bitplane_planes(int k);

/* out (nplanes_in+? planes) = in (nplanes_in planes, counts <= k) + vote (one plane);
   out has bitplane_planes(k+1) planes. in and out are plane-major:
   plane j at [j*nwords, (j+1)*nwords). out may alias in. With nplanes_in == 0, out = vote. */
void bitplane_add_vote(uint64_t *out, const uint64_t *in, int nplanes_in, int nplanes_out,
                       const uint64_t *vote, size_t nwords);

/* Majority: out[w] bit = count > floor(nranks/2), ties (count == nranks/2, even nranks)
   resolved by the tie rule; first_bit is the element index of bit 0 of word 0 (ALTERNATE
   needs the global index; it is a multiple of 64). */
void bitplane_majority(uint64_t *out, const uint64_t *planes, int nplanes, size_t nwords,
                       int nranks, pride_tie_t tie, size_t first_bit);

/* out = the majority (as bitplane_majority) of the counts in + vote (as
   bitplane_add_vote), in one pass that never writes the count planes: the ring's last
   reduce-scatter step. out may be vote (word w is read before it is written), not in. */
void bitplane_add_majority(uint64_t *out, const uint64_t *in, int nplanes_in, int nplanes_out,
                           const uint64_t *vote, size_t nwords, int nranks, pride_tie_t tie,
                           size_t first_bit);

/* counts[i] = count of element i, for i < nelems (≤ 64*nwords). */
void bitplane_to_counts(uint8_t *counts, const uint64_t *planes, int nplanes, size_t nwords,
                        size_t nelems);

/* Name of the kernel chosen at run time ("avx512", "avx2", "portable"). */
const char *bitplane_isa(void);

#endif
