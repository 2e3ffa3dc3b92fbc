/*
 * SHA-256 against the FIPS 180-4 examples, HMAC-SHA-256 against RFC 4231's test
 * cases, and the hello checker: good hellos pass, every wrong field is caught as
 * soon as its bytes are in, and a MAC binds both nonces, both ranks, the role and
 * the job.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"
#include "harness.h"

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void check_sha(const void *msg, size_t len, const char *want)
{
    uint8_t d[AUTH_DIGEST_LEN];
    char h[2 * AUTH_DIGEST_LEN + 1];
    auth_sha256(msg, len, d);
    hex(d, sizeof d, h);
    assert_string_equal(h, want);
    /* the same through odd-sized updates */
    struct auth_sha256 s;
    auth_sha256_init(&s);
    const uint8_t *p = msg;
    for (size_t off = 0, step = 1; off < len; off += step, step = step * 3 % 97 + 1)
        auth_sha256_update(&s, p + off, step < len - off ? step : len - off);
    auth_sha256_final(&s, d);
    hex(d, sizeof d, h);
    assert_string_equal(h, want);
}

static void test_sha256_fips(void **state)
{
    (void)state;
    check_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_sha(m2, strlen(m2), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m4 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmn"
                     "opqklmnopqrlmnopqrsmnopqrstnopqrstu";
    check_sha(m4, strlen(m4), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    check_sha(a, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* lengths around the padding boundary differ from each other */
    uint8_t d55[AUTH_DIGEST_LEN], d56[AUTH_DIGEST_LEN], d64[AUTH_DIGEST_LEN];
    auth_sha256(a, 55, d55);
    auth_sha256(a, 56, d56);
    auth_sha256(a, 64, d64);
    assert_memory_not_equal(d55, d56, sizeof d55);
    assert_memory_not_equal(d56, d64, sizeof d56);
    free(a);
}

static void check_hmac(const void *key, size_t kl, const void *data, size_t dl, const char *want)
{
    uint8_t d[AUTH_DIGEST_LEN];
    char h[2 * AUTH_DIGEST_LEN + 1];
    auth_hmac_sha256(key, kl, data, dl, d);
    hex(d, sizeof d, h);
    assert_int_equal(strncmp(h, want, strlen(want)), 0);
}

static void test_hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t k[131], dd[50];
    memset(k, 0x0b, 20);
    check_hmac(k, 20, "Hi There", 8,
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    check_hmac("Jefe", 4, "what do ya want for nothing?", 28,
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(k, 0xaa, 20);
    memset(dd, 0xdd, 50);
    check_hmac(k, 20, dd, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    for (int i = 0; i < 25; i++)
        k[i] = (uint8_t)(i + 1);
    memset(dd, 0xcd, 50);
    check_hmac(k, 25, dd, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    memset(k, 0x0c, 20);
    check_hmac(k, 20, "Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b");
    memset(k, 0xaa, 131);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    check_hmac(k, 131, d6, strlen(d6),
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    const char *d7 = "This is a test using a larger than block-size key and a larger than "
                     "block-size data. The key needs to be hashed before being used by the HMAC "
                     "algorithm.";
    check_hmac(k, 131, d7, strlen(d7),
               "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

static void test_equal_and_random(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    assert_int_equal(auth_random(a, sizeof a), PRIDE_OK);
    assert_int_equal(auth_random(b, sizeof b), PRIDE_OK);
    assert_memory_not_equal(a, b, sizeof a);
    assert_true(auth_equal(a, a, sizeof a));
    memcpy(b, a, sizeof a);
    b[31] ^= 1;
    assert_false(auth_equal(a, b, sizeof a));
    b[31] ^= 1;
    b[0] ^= 0x80;
    assert_false(auth_equal(a, b, sizeof a));
}

static void test_hello_check(void **state)
{
    (void)state;
    char why[200];
    uint64_t jh = auth_job_hash("job-a");
    assert_true(jh != auth_job_hash("job-b"));
    struct auth_expect e = {AUTH_HELLO_CONNECT, 1, -1, 4, jh};
    struct auth_hello h;
    auth_hello_fill(&h, AUTH_HELLO_CONNECT, 3, 4, jh);
    assert_int_equal(auth_hello_check(&h, sizeof h, &e, why, sizeof why), 1);
    for (size_t n = 0; n < sizeof h; n++) /* every prefix of a good hello is good so far */
        assert_int_equal(auth_hello_check(&h, n, &e, why, sizeof why), 0);
    struct auth_hello b = h;
    b.magic ^= 1;
    assert_int_equal(auth_hello_check(&b, 4, &e, why, sizeof why), PRIDE_ERR_AUTH);
    assert_non_null(strstr(why, "not a pride hello"));
    b = h;
    b.version = 1;
    assert_int_equal(auth_hello_check(&b, 6, &e, why, sizeof why), PRIDE_ERR_AUTH);
    assert_non_null(strstr(why, "version 1"));
    b = h;
    b.kind = AUTH_HELLO_PROOF;
    assert_int_equal(auth_hello_check(&b, 8, &e, why, sizeof why), PRIDE_ERR_AUTH);
    static const int bad_ranks[] = {-1, 0, 1, 4, 1000};
    for (size_t i = 0; i < sizeof bad_ranks / sizeof bad_ranks[0]; i++) {
        b = h;
        b.rank = bad_ranks[i];
        assert_int_equal(auth_hello_check(&b, 12, &e, why, sizeof why), PRIDE_ERR_AUTH);
    }
    b = h;
    b.nranks = 5;
    assert_int_equal(auth_hello_check(&b, 16, &e, why, sizeof why), PRIDE_ERR_AUTH);
    b = h;
    b.job_hash = auth_job_hash("job-b");
    assert_int_equal(auth_hello_check(&b, 24, &e, why, sizeof why), PRIDE_ERR_AUTH);
    assert_non_null(strstr(why, "another job"));
    /* a challenge must come from the rank that was dialled */
    struct auth_expect ec = {AUTH_HELLO_CHALLENGE, 3, 1, 4, jh};
    auth_hello_fill(&h, AUTH_HELLO_CHALLENGE, 1, 4, jh);
    assert_int_equal(auth_hello_check(&h, sizeof h, &ec, why, sizeof why), 1);
    h.rank = 2;
    assert_int_equal(auth_hello_check(&h, sizeof h, &ec, why, sizeof why), PRIDE_ERR_AUTH);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(auth_hello_check(http, strlen(http), &e, why, sizeof why), PRIDE_ERR_AUTH);
}

static void test_hello_mac_binds_everything(void **state)
{
    (void)state;
    uint8_t key[AUTH_KEY_LEN], key2[AUTH_KEY_LEN], nc[AUTH_NONCE_LEN], na[AUTH_NONCE_LEN];
    auth_key_from_passphrase("secret", key);
    auth_key_from_passphrase("secret2", key2);
    assert_int_equal(auth_random(nc, sizeof nc), PRIDE_OK);
    assert_int_equal(auth_random(na, sizeof na), PRIDE_OK);
    uint8_t ref[AUTH_DIGEST_LEN], m[AUTH_DIGEST_LEN];
    auth_hello_mac(key, 'A', nc, na, 3, 1, 4, "job", ref);
    auth_hello_mac(key, 'A', nc, na, 3, 1, 4, "job", m);
    assert_memory_equal(ref, m, sizeof m);
    auth_hello_mac(key2, 'A', nc, na, 3, 1, 4, "job", m);
    assert_memory_not_equal(ref, m, sizeof m);
    auth_hello_mac(key, 'C', nc, na, 3, 1, 4, "job", m);
    assert_memory_not_equal(ref, m, sizeof m);
    auth_hello_mac(key, 'A', na, nc, 3, 1, 4, "job", m);
    assert_memory_not_equal(ref, m, sizeof m);
    auth_hello_mac(key, 'A', nc, na, 1, 3, 4, "job", m);
    assert_memory_not_equal(ref, m, sizeof m);
    auth_hello_mac(key, 'A', nc, na, 3, 1, 5, "job", m);
    assert_memory_not_equal(ref, m, sizeof m);
    auth_hello_mac(key, 'A', nc, na, 3, 1, 4, "jo", m);
    assert_memory_not_equal(ref, m, sizeof m);
    na[17] ^= 4;
    auth_hello_mac(key, 'A', nc, na, 3, 1, 4, "job", m);
    assert_memory_not_equal(ref, m, sizeof m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_fips),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_equal_and_random),
        cmocka_unit_test(test_hello_check),
        cmocka_unit_test(test_hello_mac_binds_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
