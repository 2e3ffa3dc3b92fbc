/*
 * The byte counts the tools take on their command lines: digits with an optional
 * K/M/G suffix (powers of 1024) and an optional B. Header-only, so that the MPI
 * baseline in bench/, built by mpicc outside CMake, uses the same parser.
 */
#ifndef PRIDE_TOOL_SIZE_H
#define PRIDE_TOOL_SIZE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* 0 and *out set, or -1 for anything else (signs, junk, overflow). */
static inline int tool_parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v > (SIZE_MAX >> shift))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

#endif
