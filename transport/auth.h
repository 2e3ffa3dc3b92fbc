/*
 * Connection authentication: SHA-256 and HMAC-SHA-256 (FIPS 180-4, RFC 2104), the
 * job key, and the three hello messages a new connection exchanges to prove that
 * both ends hold that key. Backends call these; nothing here touches a socket.
 *
 * The handshake, connector C (the higher rank) to acceptor A:
 *
 *     C -> A  CONNECT    rank, nranks, job hash, nonce_c
 *     A -> C  CHALLENGE  rank, nranks, job hash, nonce_a, HMAC(key, "A" | transcript)
 *     C -> A  PROOF      rank, nranks, job hash,          HMAC(key, "C" | transcript)
 *
 * transcript = "pride-hello" | both nonces | both ranks | nranks | job | versions.
 * Each side's MAC covers the other side's fresh nonce, so a recorded handshake does
 * not verify against a new one, and the role letter keeps one side's MAC from being
 * reflected back as the other's.
 */
#ifndef PRIDE_AUTH_H
#define PRIDE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_DIGEST_LEN 32
#define AUTH_KEY_LEN 32
#define AUTH_NONCE_LEN 32

struct auth_sha256 {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t buf[64];
    size_t nbuf;
};

void auth_sha256_init(struct auth_sha256 *s);
void auth_sha256_update(struct auth_sha256 *s, const void *data, size_t len);
void auth_sha256_final(struct auth_sha256 *s, uint8_t out[AUTH_DIGEST_LEN]);
void auth_sha256(const void *data, size_t len, uint8_t out[AUTH_DIGEST_LEN]);

struct auth_hmac {
    struct auth_sha256 inner, outer;
};

void auth_hmac_init(struct auth_hmac *m, const void *key, size_t keylen);
void auth_hmac_update(struct auth_hmac *m, const void *data, size_t len);
void auth_hmac_final(struct auth_hmac *m, uint8_t out[AUTH_DIGEST_LEN]);
void auth_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                      uint8_t out[AUTH_DIGEST_LEN]);

/* 1 when the n bytes at a and b are equal; the time taken does not depend on where
   they differ. */
int auth_equal(const void *a, const void *b, size_t n);

/* Fill buf with bytes from the kernel's random source; PRIDE_OK or PRIDE_ERR_IO. */
int auth_random(void *buf, size_t len);

/* The job key named by a passphrase (PRIDE_AUTH_KEY): its SHA-256. */
void auth_key_from_passphrase(const char *pass, uint8_t key[AUTH_KEY_LEN]);

/* ---- hello messages ---- */

#define AUTH_HELLO_MAGIC 0x48445250u /* "PRDH" little-endian */
#define AUTH_HELLO_VERSION 2u        /* 1 was the unauthenticated hello */

enum auth_hello_kind { AUTH_HELLO_CONNECT = 1, AUTH_HELLO_CHALLENGE = 2, AUTH_HELLO_PROOF = 3 };

/* 88 bytes, little-endian on the wire. */
struct auth_hello {
    uint32_t magic;
    uint16_t version;
    uint16_t kind;
    int32_t rank;     /* the sender's rank */
    int32_t nranks;
    uint64_t job_hash;
    uint8_t nonce[AUTH_NONCE_LEN]; /* CONNECT, CHALLENGE; zero in a PROOF */
    uint8_t mac[AUTH_DIGEST_LEN];  /* CHALLENGE, PROOF; zero in a CONNECT */
};

_Static_assert(sizeof(struct auth_hello) == 88, "hello is 88 bytes on the wire");

/* What the reader of a hello expects of it. */
struct auth_expect {
    int kind;        /* enum auth_hello_kind */
    int self;        /* the reader's rank */
    int peer;        /* the rank the sender must be, or -1 (CONNECT: any rank above self) */
    int nranks;
    uint64_t job_hash;
};

uint64_t auth_job_hash(const char *job);

/* Check a hello's fields (not its MAC) against e, on the first len bytes received.
   A prefix that already cannot become a good hello fails at once, so junk is dropped
   without waiting for 88 bytes. Returns 1 when all sizeof(struct auth_hello) bytes
   are in and good, 0 when len is a good prefix, or a negative PRIDE_ERR_* with a
   sentence in why. */
int auth_hello_check(const void *bytes, size_t len, const struct auth_expect *e, char *why,
                     size_t whylen);

/* The MAC one side puts in its CHALLENGE (role 'A') or PROOF (role 'C'). */
void auth_hello_mac(const uint8_t key[AUTH_KEY_LEN], char role,
                    const uint8_t nonce_c[AUTH_NONCE_LEN], const uint8_t nonce_a[AUTH_NONCE_LEN],
                    int rank_c, int rank_a, int nranks, const char *job,
                    uint8_t out[AUTH_DIGEST_LEN]);

/* Fill a hello of the given kind (mac and nonce zero; the caller adds them). */
void auth_hello_fill(struct auth_hello *h, int kind, int rank, int nranks, uint64_t job_hash);

#endif
