/*
 * CRC32C: the check value and the RFC 3720 (iSCSI) examples, the hardware and table
 * paths agreeing on every length and alignment, and extension over split buffers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"
#include "harness.h"

static void test_known_values(void **state)
{
    (void)state;
    uint8_t b[32];
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_table(0, "123456789", 9), 0xE3069283u);
    memset(b, 0, sizeof b);
    assert_int_equal(crc32c(0, b, 32), 0x8A9136AAu);
    memset(b, 0xff, sizeof b);
    assert_int_equal(crc32c(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    assert_int_equal(crc32c(0, b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    assert_int_equal(crc32c(0, b, 32), 0x113FDB5Cu);
    assert_int_equal(crc32c(0, NULL, 0), 0u);
}

static void test_paths_agree(void **state)
{
    (void)state;
    enum { N = 4096 };
    static uint8_t buf[N + 16];
    uint64_t s = 7;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)harness_rand(&s);
    for (size_t off = 0; off < 16; off++)
        for (size_t len = 0; len <= N; len += len < 80 ? 1 : 97) {
            uint32_t a = crc32c(0, buf + off, len), b = crc32c_table(0, buf + off, len);
            assert_int_equal(a, b);
            size_t cut = len / 3;
            assert_int_equal(crc32c(crc32c(0, buf + off, cut), buf + off + cut, len - cut), a);
            assert_int_equal(crc32c_table(crc32c(0, buf + off, cut), buf + off + cut, len - cut),
                             a);
        }
    /* one flipped bit anywhere changes it */
    uint32_t ref = crc32c(0, buf, N);
    for (size_t i = 0; i < N; i += 61) {
        buf[i] ^= 0x10;
        assert_int_not_equal(crc32c(0, buf, N), ref);
        buf[i] ^= 0x10;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_paths_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
