/*
 * redis:HOST:PORT — the store kept in a real Redis server, through hiredis.
 *
 * The one idea: Redis already has every operation a store needs, so this file only
 * translates: set is SET, add is INCRBY (atomic in Redis, and the reply is the new
 * value), get is GET repeated with the shared backoff until the key exists or the
 * deadline passes. Keys are "pride:JOB:key", so jobs sharing a server stay apart.
 * A command that fails on the connection drops it; the next call reconnects.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "pride/status.h"
#include "store.h"
#include "store_impl.h"

#define REDIS_KEY_CAP (sizeof "pride:" + STORE_MAX_JOB + 1 + STORE_MAX_KEY)

struct redis_store {
    struct pride_store base;
    pthread_mutex_t mu; /* hiredis contexts are not thread-safe */
    redisContext *rc;   /* NULL: connect on the next call */
    int timeout_ms;
    int port;
    char host[256];
    char job[STORE_MAX_JOB + 1];
};

static struct timeval redis_tv(int64_t ns)
{
    if (ns < 1000)
        ns = 1000;
    return (struct timeval){(time_t)(ns / 1000000000LL), (suseconds_t)(ns % 1000000000LL / 1000)};
}

/* Connect, retrying with backoff until the deadline. Called with mu held. */
static int redis_connect(struct redis_store *rs, int64_t deadline_ns)
{
    char err[128] = "no attempt before the deadline";
    int64_t delay = 0;
    do {
        redisContext *rc =
            redisConnectWithTimeout(rs->host, rs->port, redis_tv(deadline_ns - pride_now_ns()));
        if (rc && !rc->err &&
            redisSetTimeout(rc, redis_tv((int64_t)rs->timeout_ms * 1000000LL)) == REDIS_OK) {
            rs->rc = rc;
            return PRIDE_OK;
        }
        snprintf(err, sizeof err, "%s", rc ? rc->errstr : "out of memory");
        redisFree(rc);
    } while (store_backoff(&delay, deadline_ns) == PRIDE_OK);
    return store_fail(&rs->base, PRIDE_ERR_TIMEOUT, "redis store: cannot connect to %s port %d "
                      "before the deadline: %s", rs->host, rs->port, err);
}

/* Run "cmd KEY [ARG]" (arg NULL: no ARG) on the job's key; *reply is the answer.
   A failure on the connection drops it. */
static int redis_run(struct redis_store *rs, const char *what, const char *cmd, const char *key,
                     const void *arg, size_t arglen, redisReply **reply)
{
    char full[REDIS_KEY_CAP];
    const char *argv[3] = {cmd, full, arg};
    size_t argvlen[3] = {strlen(cmd), 0, arglen};
    argvlen[1] = (size_t)snprintf(full, sizeof full, "pride:%s:%s", rs->job, key);
    pthread_mutex_lock(&rs->mu);
    int st = rs->rc ? PRIDE_OK : redis_connect(rs, pride_deadline_ns(rs->timeout_ms));
    redisReply *r = NULL;
    if (st == PRIDE_OK) {
        r = redisCommandArgv(rs->rc, arg ? 3 : 2, argv, argvlen);
        if (!r) {
            st = store_fail(&rs->base, PRIDE_ERR_PEER, "redis store: %s of key \"%s\" on %s "
                            "port %d failed: %s", what, key, rs->host, rs->port, rs->rc->errstr);
            redisFree(rs->rc);
            rs->rc = NULL;
        }
    }
    pthread_mutex_unlock(&rs->mu);
    if (st == PRIDE_OK && r->type == REDIS_REPLY_ERROR) {
        st = store_fail(&rs->base, PRIDE_ERR_INVALID, "redis store: %s of key \"%s\": the "
                        "server says: %s", what, key, r->str);
        freeReplyObject(r);
    }
    if (st == PRIDE_OK)
        *reply = r;
    return st;
}

static int redis_set(struct pride_store *s, const char *key, const void *val, size_t len)
{
    redisReply *r;
    int st = redis_run((struct redis_store *)s, "set", "SET", key, val ? val : "", len, &r);
    if (st == PRIDE_OK)
        freeReplyObject(r);
    return st;
}

static int redis_get(struct pride_store *s, const char *key, void **val, size_t *len,
                     int64_t deadline_ns)
{
    struct redis_store *rs = (struct redis_store *)s;
    int64_t delay = 0;
    for (;;) {
        redisReply *r;
        int st = redis_run(rs, "get", "GET", key, NULL, 0, &r);
        if (st != PRIDE_OK)
            return st;
        if (r->type == REDIS_REPLY_STRING) {
            void *v = malloc(r->len ? (size_t)r->len : 1);
            if (v)
                memcpy(v, r->str, (size_t)r->len);
            *len = (size_t)r->len;
            freeReplyObject(r);
            if (!v)
                return store_fail(s, PRIDE_ERR_NOMEM, "redis store: out of memory");
            *val = v;
            return PRIDE_OK;
        }
        int type = r->type;
        freeReplyObject(r);
        if (type != REDIS_REPLY_NIL)
            return store_fail(s, PRIDE_ERR_PEER, "redis store: get of key \"%s\": unexpected "
                              "reply type %d", key, type);
        if (store_backoff(&delay, deadline_ns) == PRIDE_ERR_TIMEOUT)
            return store_fail(s, PRIDE_ERR_TIMEOUT, "redis store: key \"%s\" did not appear on "
                              "%s port %d before the deadline", key, rs->host, rs->port);
    }
}

static int redis_add(struct pride_store *s, const char *key, int64_t delta, int64_t *result)
{
    char d[STORE_INT_CHARS];
    size_t dl = store_int_format(delta, d);
    redisReply *r;
    int st = redis_run((struct redis_store *)s, "add", "INCRBY", key, d, dl, &r);
    if (st != PRIDE_OK)
        return st;
    if (r->type == REDIS_REPLY_INTEGER)
        *result = (int64_t)r->integer;
    else
        st = store_fail(s, PRIDE_ERR_PEER, "redis store: add to key \"%s\": unexpected reply "
                        "type %d", key, r->type);
    freeReplyObject(r);
    return st;
}

static void redis_close(struct pride_store *s)
{
    struct redis_store *rs = (struct redis_store *)s;
    redisFree(rs->rc);
    pthread_mutex_destroy(&rs->mu);
    free(rs);
}

static int redis_open(const char *spec, const char *job, int rank, int nranks, int timeout_ms,
                      struct pride_store **out, char *why, size_t whylen)
{
    (void)rank;
    (void)nranks;
    struct redis_store *rs = calloc(1, sizeof *rs);
    if (!rs) {
        snprintf(why, whylen, "redis store: out of memory");
        return PRIDE_ERR_NOMEM;
    }
    int st = store_hostport(spec, rs->host, sizeof rs->host, &rs->port, why, whylen);
    if (st != PRIDE_OK) {
        free(rs);
        return st;
    }
    rs->base.ops = &pride_store_redis_ops;
    rs->timeout_ms = timeout_ms;
    snprintf(rs->job, sizeof rs->job, "%s", job);
    pthread_mutex_init(&rs->mu, NULL);
    pthread_mutex_lock(&rs->mu);
    st = redis_connect(rs, pride_deadline_ns(timeout_ms));
    pthread_mutex_unlock(&rs->mu);
    if (st != PRIDE_OK) {
        snprintf(why, whylen, "%s", rs->base.why);
        redis_close(&rs->base);
        return st;
    }
    *out = &rs->base;
    return PRIDE_OK;
}

const struct pride_store_ops pride_store_redis_ops = {
    .size = sizeof(struct pride_store_ops),
    .scheme = "redis",
    .open = redis_open,
    .set = redis_set,
    .get = redis_get,
    .add = redis_add,
    .close = redis_close,
};
