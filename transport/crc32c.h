/*
 * CRC32C (Castagnoli), the checksum frames carry with PRIDE_CHECKSUM=crc32c. On
 * x86-64 with SSE4.2 the crc32 instruction does 8 bytes a step (chosen at run time);
 * elsewhere a table does 8 bytes a step (slicing-by-8). Both give the same value.
 */
#ifndef PRIDE_CRC32C_H
#define PRIDE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (0 to start) with len bytes: crc32c(crc32c(0, a), b) == crc32c(0, a|b). */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The portable table version, for tests that compare the two. */
uint32_t crc32c_table(uint32_t crc, const void *data, size_t len);

#endif
