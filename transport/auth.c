/*
 * SHA-256 (FIPS 180-4), HMAC-SHA-256 (RFC 2104) and the hello messages of the
 * authenticated handshake (see auth.h). Written here because no crypto library is a
 * dependency; checked against the FIPS 180-4 and RFC 4231 test vectors. The hello
 * checker is the one place a stranger's first bytes are interpreted, so it is small
 * and fuzzed, and it rejects a bad prefix as soon as it sees one.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "frame.h"
#include "pride/status.h"

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t rotr(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha_k[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void auth_sha256_init(struct auth_sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->nbytes = 0;
    s->nbuf = 0;
}

void auth_sha256_update(struct auth_sha256 *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    s->nbytes += len;
    if (s->nbuf) {
        size_t n = 64 - s->nbuf < len ? 64 - s->nbuf : len;
        memcpy(s->buf + s->nbuf, p, n);
        s->nbuf += n;
        p += n;
        len -= n;
        if (s->nbuf < 64)
            return;
        sha_block(s->h, s->buf);
        s->nbuf = 0;
    }
    for (; len >= 64; p += 64, len -= 64)
        sha_block(s->h, p);
    memcpy(s->buf, p, len);
    s->nbuf = len;
}

void auth_sha256_final(struct auth_sha256 *s, uint8_t out[AUTH_DIGEST_LEN])
{
    uint64_t bits = s->nbytes * 8;
    uint8_t pad[72] = {0x80};
    size_t padlen = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int i = 0; i < 8; i++)
        pad[padlen + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
    auth_sha256_update(s, pad, padlen + 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(s->h[i] >> (24 - 8 * j));
    memset(s, 0, sizeof *s);
}

void auth_sha256(const void *data, size_t len, uint8_t out[AUTH_DIGEST_LEN])
{
    struct auth_sha256 s;
    auth_sha256_init(&s);
    auth_sha256_update(&s, data, len);
    auth_sha256_final(&s, out);
}

void auth_hmac_init(struct auth_hmac *m, const void *key, size_t keylen)
{
    uint8_t k[64] = {0}, pad[64];
    if (keylen > 64)
        auth_sha256(key, keylen, k);
    else if (keylen)
        memcpy(k, key, keylen);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    auth_sha256_init(&m->inner);
    auth_sha256_update(&m->inner, pad, 64);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    auth_sha256_init(&m->outer);
    auth_sha256_update(&m->outer, pad, 64);
    memset(k, 0, sizeof k);
    memset(pad, 0, sizeof pad);
}

void auth_hmac_update(struct auth_hmac *m, const void *data, size_t len)
{
    auth_sha256_update(&m->inner, data, len);
}

void auth_hmac_final(struct auth_hmac *m, uint8_t out[AUTH_DIGEST_LEN])
{
    uint8_t ih[AUTH_DIGEST_LEN];
    auth_sha256_final(&m->inner, ih);
    auth_sha256_update(&m->outer, ih, sizeof ih);
    auth_sha256_final(&m->outer, out);
}

void auth_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                      uint8_t out[AUTH_DIGEST_LEN])
{
    struct auth_hmac m;
    auth_hmac_init(&m, key, keylen);
    auth_hmac_update(&m, data, len);
    auth_hmac_final(&m, out);
}

int auth_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

int auth_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        len -= (size_t)n;
    }
    if (len == 0)
        return PRIDE_OK;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return PRIDE_ERR_IO;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        len -= (size_t)n;
    }
    close(fd);
    return len == 0 ? PRIDE_OK : PRIDE_ERR_IO;
}

void auth_key_from_passphrase(const char *pass, uint8_t key[AUTH_KEY_LEN])
{
    auth_sha256(pass, strlen(pass), key);
}

uint64_t auth_job_hash(const char *job)
{
    uint8_t d[AUTH_DIGEST_LEN];
    auth_sha256(job, strlen(job), d);
    uint64_t h = 0;
    for (int i = 0; i < 8; i++)
        h |= (uint64_t)d[i] << (8 * i);
    return h;
}

void auth_hello_fill(struct auth_hello *h, int kind, int rank, int nranks, uint64_t job_hash)
{
    memset(h, 0, sizeof *h);
    h->magic = AUTH_HELLO_MAGIC;
    h->version = AUTH_HELLO_VERSION;
    h->kind = (uint16_t)kind;
    h->rank = rank;
    h->nranks = nranks;
    h->job_hash = job_hash;
}

static const char *const kind_names[] = {"?", "CONNECT", "CHALLENGE", "PROOF"};

int auth_hello_check(const void *bytes, size_t len, const struct auth_expect *e, char *why,
                     size_t whylen)
{
    struct auth_hello h;
    memset(&h, 0, sizeof h);
    if (len)
        memcpy(&h, bytes, len < sizeof h ? len : sizeof h);
    if (len >= 4 && h.magic != AUTH_HELLO_MAGIC) {
        snprintf(why, whylen, "not a pride hello (first bytes 0x%08x)", (unsigned)h.magic);
        return PRIDE_ERR_AUTH;
    }
    if (len >= 6 && h.version != AUTH_HELLO_VERSION) {
        snprintf(why, whylen, "hello of protocol version %u, this build speaks %u",
                 (unsigned)h.version, AUTH_HELLO_VERSION);
        return PRIDE_ERR_AUTH;
    }
    if (len >= 8 && h.kind != e->kind) {
        snprintf(why, whylen, "hello of kind %u where a %s was due", (unsigned)h.kind,
                 kind_names[e->kind]);
        return PRIDE_ERR_AUTH;
    }
    if (len >= 12) {
        int bad = e->peer >= 0 ? h.rank != e->peer : h.rank <= e->self || h.rank >= e->nranks;
        if (bad) {
            snprintf(why, whylen, "hello from rank %d where %s was due", (int)h.rank,
                     e->peer >= 0 ? "another rank" : "a higher rank of the job");
            return PRIDE_ERR_AUTH;
        }
    }
    if (len >= 16 && h.nranks != e->nranks) {
        snprintf(why, whylen, "hello from a job of %d ranks, this job has %d", (int)h.nranks,
                 e->nranks);
        return PRIDE_ERR_AUTH;
    }
    if (len >= 24 && h.job_hash != e->job_hash) {
        snprintf(why, whylen, "hello from another job (PRIDE_JOB differs)");
        return PRIDE_ERR_AUTH;
    }
    return len >= sizeof h ? 1 : 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void auth_hello_mac(const uint8_t key[AUTH_KEY_LEN], char role,
                    const uint8_t nonce_c[AUTH_NONCE_LEN], const uint8_t nonce_a[AUTH_NONCE_LEN],
                    int rank_c, int rank_a, int nranks, const char *job,
                    uint8_t out[AUTH_DIGEST_LEN])
{
    static const char label[] = "pride-hello";
    uint8_t ints[24];
    size_t jl = strlen(job);
    put32(ints, (uint32_t)rank_c);
    put32(ints + 4, (uint32_t)rank_a);
    put32(ints + 8, (uint32_t)nranks);
    put32(ints + 12, AUTH_HELLO_VERSION);
    put32(ints + 16, PRIDE_PROTO_VERSION);
    put32(ints + 20, (uint32_t)jl);
    struct auth_hmac m;
    auth_hmac_init(&m, key, AUTH_KEY_LEN);
    auth_hmac_update(&m, label, sizeof label - 1);
    auth_hmac_update(&m, &role, 1);
    auth_hmac_update(&m, nonce_c, AUTH_NONCE_LEN);
    auth_hmac_update(&m, nonce_a, AUTH_NONCE_LEN);
    auth_hmac_update(&m, ints, sizeof ints);
    auth_hmac_update(&m, job, jl);
    auth_hmac_final(&m, out);
}
