/*
 * CRC32C (Castagnoli polynomial 0x1EDC6F41, reflected 0x82F63B78), see crc32c.h.
 * The hardware path is one dependency chain of crc32 instructions, 8 bytes each
 * (about 8 bytes every 3 cycles); the table path is slicing-by-8 over tables built
 * once. Which one runs is decided once, from what the CPU reports.
 */
#include "crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_tab[8][256];
static pthread_once_t crc_tab_once = PTHREAD_ONCE_INIT;

static void crc_tab_build(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
}

uint32_t crc32c_table(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_tab_once, crc_tab_build);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* little-endian hosts only, as the wire format */
        w ^= c;
        c = crc_tab[7][w & 0xff] ^ crc_tab[6][(w >> 8) & 0xff] ^ crc_tab[5][(w >> 16) & 0xff] ^
            crc_tab[4][(w >> 24) & 0xff] ^ crc_tab[3][(w >> 32) & 0xff] ^
            crc_tab[2][(w >> 40) & 0xff] ^ crc_tab[1][(w >> 48) & 0xff] ^ crc_tab[0][w >> 56];
    }
    for (; len > 0; p++, len--)
        c = (c >> 8) ^ crc_tab[0][(c ^ *p) & 0xff];
    return ~c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *data,
                                                               size_t len)
{
    const uint8_t *p = data;
    uint64_t c = ~crc;
    for (; len > 0 && ((uintptr_t)p & 7); p++, len--)
        c = _mm_crc32_u8((uint32_t)c, *p);
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
    }
    for (; len > 0; p++, len--)
        c = _mm_crc32_u8((uint32_t)c, *p);
    return ~(uint32_t)c;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
    static atomic_int hw = -1; /* racing first callers all store the same answer */
    int h = atomic_load_explicit(&hw, memory_order_relaxed);
    if (h < 0) {
        h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        atomic_store_explicit(&hw, h, memory_order_relaxed);
    }
    return h ? crc32c_sse42(crc, data, len) : crc32c_table(crc, data, len);
}
#else
uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
    return crc32c_table(crc, data, len);
}
#endif
