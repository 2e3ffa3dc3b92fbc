/*
 * Rendezvous stores: pick the backend by the spec's scheme, and check every
 * argument here, once, so a backend only ever sees a valid job, key and value.
 * Also the helpers the backends share (store_impl.h): backoff, HOST:PORT,
 * counters. A barrier is built on add and get alone, so it works on every backend.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pride/status.h"
#include "store.h"
#include "store_impl.h"

#define STORE_BACKOFF_FIRST_NS 1000000LL /* 1 ms */
#define STORE_BACKOFF_CAP_NS 50000000LL  /* 50 ms */

static const struct pride_store_ops *const store_backends[] = {
    &pride_store_file_ops,
    &pride_store_tcp_ops,
#ifdef PRIDE_HAVE_REDIS
    &pride_store_redis_ops,
#endif
};

/* Every scheme pride knows, built into this library or not. */
static const char *const store_schemes[] = {"file", "tcp", "redis"};

int store_backoff(int64_t *delay_ns, int64_t deadline_ns)
{
    int64_t left = deadline_ns - pride_now_ns();
    if (left <= 0)
        return PRIDE_ERR_TIMEOUT;
    int64_t d = *delay_ns > 0 ? *delay_ns : STORE_BACKOFF_FIRST_NS;
    *delay_ns = d * 2 < STORE_BACKOFF_CAP_NS ? d * 2 : STORE_BACKOFF_CAP_NS;
    if (d > left)
        d = left;
    struct timespec ts = {(time_t)(d / 1000000000LL), (long)(d % 1000000000LL)};
    nanosleep(&ts, NULL);
    return PRIDE_OK;
}

static void store_say(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void store_say(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

int store_fail(struct pride_store *s, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
    return status;
}

int store_hostport(const char *spec, char *host, size_t hostlen, int *port, char *why,
                   size_t whylen)
{
    const char *h = spec, *colon;
    size_t hl;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':') {
            store_say(why, whylen, "store address \"%s\" opens '[' but is not [ADDR]:PORT", spec);
            return PRIDE_ERR_INVALID;
        }
        h = spec + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strchr(spec, ':');
        if (!colon) {
            store_say(why, whylen, "store address \"%s\" has no port: expected HOST:PORT", spec);
            return PRIDE_ERR_INVALID;
        }
        if (strchr(colon + 1, ':')) {
            store_say(why, whylen,
                      "store address \"%s\" has several ':': write an IPv6 address as [ADDR]:PORT",
                      spec);
            return PRIDE_ERR_INVALID;
        }
        hl = (size_t)(colon - spec);
    }
    if (hl == 0) {
        store_say(why, whylen, "store address \"%s\" has an empty host", spec);
        return PRIDE_ERR_INVALID;
    }
    if (hl >= hostlen) {
        store_say(why, whylen, "store address \"%s\" has a host longer than %zu characters", spec,
                  hostlen - 1);
        return PRIDE_ERR_INVALID;
    }
    const char *p = colon + 1;
    long v = 0;
    size_t digits = 0;
    for (; p[digits] >= '0' && p[digits] <= '9' && digits < 6; digits++)
        v = v * 10 + (p[digits] - '0');
    if (digits == 0 || p[digits] != '\0' || v < 1 || v > 65535) {
        store_say(why, whylen, "store address \"%s\" has port \"%s\": expected a number in 1..65535",
                  spec, p);
        return PRIDE_ERR_INVALID;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)v;
    return PRIDE_OK;
}

int store_int_parse(const void *buf, size_t len, int64_t *out)
{
    const char *c = buf;
    size_t i = 0;
    int neg = 0;
    if (len > 0 && c[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == len || len >= STORE_INT_CHARS)
        return PRIDE_ERR_INVALID;
    uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (c[i] < '0' || c[i] > '9')
            return PRIDE_ERR_INVALID;
        uint64_t d = (uint64_t)(c[i] - '0');
        if (mag > (limit - d) / 10)
            return PRIDE_ERR_INVALID;
        mag = mag * 10 + d;
    }
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return PRIDE_OK;
}

size_t store_int_format(int64_t v, char buf[STORE_INT_CHARS])
{
    return (size_t)snprintf(buf, STORE_INT_CHARS, "%" PRId64, v);
}

/* A name (key or job) is 1..max printable ASCII characters. */
static int store_name_ok(const char *name, size_t max)
{
    if (!name || !name[0])
        return 0;
    size_t n = 0;
    for (; name[n]; n++)
        if (n >= max || name[n] < 0x20 || name[n] > 0x7e)
            return 0;
    return 1;
}

int pride_store_open(const char *spec, const char *job, int rank, int nranks, int timeout_ms,
                     struct pride_store **out, char *why, size_t whylen)
{
    char ignored[256];
    if (!why || whylen == 0) { /* backends always have somewhere to write */
        why = ignored;
        whylen = sizeof ignored;
    }
    if (!out) {
        store_say(why, whylen, "pride_store_open needs somewhere to put the store (out is NULL)");
        return PRIDE_ERR_INVALID;
    }
    if (!spec) {
        store_say(why, whylen, "no store given: expected file:DIR, tcp:HOST:PORT or "
                               "redis:HOST:PORT");
        return PRIDE_ERR_INVALID;
    }
    const char *colon = strchr(spec, ':');
    if (!colon) {
        store_say(why, whylen, "store \"%s\" has no scheme: expected file:DIR, "
                               "tcp:HOST:PORT or redis:HOST:PORT", spec);
        return PRIDE_ERR_INVALID;
    }
    size_t sl = (size_t)(colon - spec);
    const struct pride_store_ops *ops = NULL;
    for (size_t i = 0; i < sizeof store_backends / sizeof store_backends[0]; i++)
        if (strlen(store_backends[i]->scheme) == sl &&
            !strncmp(store_backends[i]->scheme, spec, sl))
            ops = store_backends[i];
    if (!ops) {
        for (size_t i = 0; i < sizeof store_schemes / sizeof store_schemes[0]; i++) {
            if (strlen(store_schemes[i]) == sl && !strncmp(store_schemes[i], spec, sl)) {
                store_say(why, whylen, "store \"%s\": this build of pride has no %s: store",
                          spec, store_schemes[i]);
                return PRIDE_ERR_UNSUPPORTED;
            }
        }
        store_say(why, whylen, "store \"%s\" has an unknown scheme \"%.*s\": expected file:, "
                               "tcp: or redis:", spec, (int)(sl > 32 ? 32 : sl), spec);
        return PRIDE_ERR_INVALID;
    }
    if (colon[1] == '\0') {
        store_say(why, whylen, "store \"%s\" names no %s", spec,
                  !strcmp(ops->scheme, "file") ? "directory" : "HOST:PORT");
        return PRIDE_ERR_INVALID;
    }
    if (!store_name_ok(job, STORE_MAX_JOB)) {
        store_say(why, whylen, "job name must be 1..%d printable characters", STORE_MAX_JOB);
        return PRIDE_ERR_INVALID;
    }
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        store_say(why, whylen, "rank %d of %d ranks is out of range", rank, nranks);
        return PRIDE_ERR_INVALID;
    }
    if (timeout_ms <= 0) {
        store_say(why, whylen, "store timeout must be positive, not %d ms", timeout_ms);
        return PRIDE_ERR_INVALID;
    }
    return ops->open(colon + 1, job, rank, nranks, timeout_ms, out, why, whylen);
}

static int store_key_check(struct pride_store *s, const char *key)
{
    if (!key)
        return store_fail(s, PRIDE_ERR_INVALID, "store key is NULL");
    size_t n = 0;
    for (; key[n]; n++)
        if (key[n] < 0x20 || key[n] > 0x7e)
            return store_fail(s, PRIDE_ERR_INVALID, "store key has byte 0x%02x at position %zu: "
                              "keys are 1..%d printable characters", (unsigned char)key[n], n,
                              STORE_MAX_KEY);
    if (n == 0 || n > STORE_MAX_KEY)
        return store_fail(s, PRIDE_ERR_INVALID, "store key of %zu characters: keys are 1..%d "
                          "printable characters", n, STORE_MAX_KEY);
    return PRIDE_OK;
}

int pride_store_set(struct pride_store *s, const char *key, const void *val, size_t len)
{
    if (!s)
        return PRIDE_ERR_INVALID;
    int st = store_key_check(s, key);
    if (st != PRIDE_OK)
        return st;
    if (len > STORE_MAX_VALUE)
        return store_fail(s, PRIDE_ERR_INVALID, "value for key \"%s\" is %zu bytes, more "
                          "than the store's limit of %u", key, len, STORE_MAX_VALUE);
    if (!val && len > 0)
        return store_fail(s, PRIDE_ERR_INVALID, "value for key \"%s\" is NULL", key);
    return s->ops->set(s, key, val, len);
}

int pride_store_get(struct pride_store *s, const char *key, void **val, size_t *len,
                    int64_t deadline_ns)
{
    if (!s)
        return PRIDE_ERR_INVALID;
    int st = store_key_check(s, key);
    if (st != PRIDE_OK)
        return st;
    if (!val || !len)
        return store_fail(s, PRIDE_ERR_INVALID, "get of key \"%s\" has nowhere to put "
                          "the value", key);
    return s->ops->get(s, key, val, len, deadline_ns);
}

int pride_store_add(struct pride_store *s, const char *key, int64_t delta, int64_t *result)
{
    if (!s)
        return PRIDE_ERR_INVALID;
    int st = store_key_check(s, key);
    if (st != PRIDE_OK)
        return st;
    if (!result)
        return store_fail(s, PRIDE_ERR_INVALID, "add to key \"%s\" has nowhere to put "
                          "the result", key);
    return s->ops->add(s, key, delta, result);
}

int pride_store_barrier(struct pride_store *s, const char *key, int nranks, int64_t deadline_ns)
{
    if (!s)
        return PRIDE_ERR_INVALID;
    if (nranks < 1)
        return store_fail(s, PRIDE_ERR_INVALID, "barrier \"%s\" for %d ranks", key ? key : "",
                          nranks);
    int64_t count, delay = 0;
    int st = pride_store_add(s, key, 1, &count);
    while (st == PRIDE_OK && count < nranks) {
        st = store_backoff(&delay, deadline_ns);
        if (st == PRIDE_ERR_TIMEOUT) {
            store_fail(s, st, "barrier \"%s\": %" PRId64 " of %d ranks arrived before "
                       "the deadline", key, count, nranks);
            break;
        }
        void *v;
        size_t vl;
        st = pride_store_get(s, key, &v, &vl, deadline_ns);
        if (st != PRIDE_OK)
            break;
        st = store_int_parse(v, vl, &count);
        free(v);
        if (st != PRIDE_OK)
            store_fail(s, st, "barrier \"%s\": the key does not hold a counter", key);
    }
    return st;
}

void pride_store_close(struct pride_store *s)
{
    if (s)
        s->ops->close(s);
}
