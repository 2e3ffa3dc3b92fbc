/*
 * libFuzzer target: the handshake parser. The first bytes choose what the reader
 * expects (kind, its rank, the peer, nranks); the rest arrive in pieces of sizes
 * the input also chooses, and auth_hello_check must give the same verdict a reader
 * of the whole message gets, never accept a hello with a wrong field, and never
 * read past what arrived. A hello it accepts gets its MAC checked, as a rank would.
 */
#include <stdint.h>
#include <string.h>

#include "auth.h"
#include "pride/pride.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    struct auth_expect e = {.kind = 1 + data[0] % 3,
                            .self = data[1] % 8,
                            .nranks = 1 + data[2] % 16,
                            .job_hash = auth_job_hash("pride")};
    e.peer = e.kind == AUTH_HELLO_CONNECT ? -1 : (int)(data[3] % 8);
    size_t step = 1 + data[3] % 13;
    data += 4;
    size -= 4;
    char why[200];
    /* a reader sees growing prefixes: once one fails, stop, as the acceptor does */
    int verdict = 0;
    for (size_t got = step < size ? step : size;; got = got + step < size ? got + step : size) {
        verdict = auth_hello_check(data, got, &e, why, sizeof why);
        if (verdict != 0 || got == size)
            break;
    }
    if (verdict == 1) {
        struct auth_hello h;
        memcpy(&h, data, sizeof h);
        if (h.magic != AUTH_HELLO_MAGIC || h.version != AUTH_HELLO_VERSION || h.kind != e.kind ||
            h.nranks != e.nranks || h.job_hash != e.job_hash)
            __builtin_trap();
        if (e.peer >= 0 ? h.rank != e.peer : (h.rank <= e.self || h.rank >= e.nranks))
            __builtin_trap();
        uint8_t key[AUTH_KEY_LEN], mac[AUTH_DIGEST_LEN];
        auth_key_from_passphrase("fuzz", key);
        auth_hello_mac(key, 'C', h.nonce, h.nonce, h.rank, e.self, e.nranks, "pride", mac);
        if (auth_equal(mac, h.mac, sizeof mac) != !memcmp(mac, h.mac, sizeof mac))
            __builtin_trap();
    } else if (verdict < 0 && verdict != PRIDE_ERR_AUTH) {
        __builtin_trap();
    }
    return 0;
}
