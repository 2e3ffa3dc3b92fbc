/*
 * Transport "faulty": the tcp backend with faults injected into the socket calls of
 * its data path, for tests of what the library does when the network misbehaves.
 * The handshake runs clean; the faults start with the first frame.
 *
 * PRIDE_FAULT lists faults, comma separated:
 *   close_after=BYTES  once this rank has sent BYTES bytes (headers included, all
 *                      connections together), every connection it sends on is shut
 *   delay_ms=N         every send and receive call first sleeps N ms
 *   corrupt_byte=OFF   the OFF-th byte this rank sends (from 0) goes out bit-flipped
 *   short_io           every call moves 1 to 7 bytes at most
 * PRIDE_FAULT_RANK names the rank that misbehaves (default: every rank).
 *
 * The one idea: tcp.c reaches sendmsg and recv through a table (struct tcp_sys), and
 * this file swaps the table after tcp has connected. A fault changes only what the
 * kernel is asked to do, never the transport's own state.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tcp.h"

struct fault {
    long long close_after;  /* -1: off */
    long long corrupt_byte; /* -1: off, or already done */
    int delay_ms;
    int short_io;
    unsigned long long sent;
    uint64_t rng;
};

static void fault_delay(const struct fault *f)
{
    if (f->delay_ms <= 0)
        return;
    struct timespec ts = {f->delay_ms / 1000, (long)(f->delay_ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static size_t fault_short(struct fault *f, size_t len)
{
    if (!f->short_io)
        return len;
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    size_t k = 1 + (size_t)(f->rng % 7);
    return k < len ? k : len;
}

static ssize_t fault_sendmsg(void *user, int fd, const struct msghdr *m, int flags)
{
    struct fault *f = user;
    fault_delay(f);
    size_t total = 0;
    for (size_t i = 0; i < m->msg_iovlen; i++)
        total += m->msg_iov[i].iov_len;
    size_t limit = fault_short(f, total);
    if (f->close_after >= 0) {
        if (f->sent >= (unsigned long long)f->close_after) {
            shutdown(fd, SHUT_RDWR);
            errno = EPIPE;
            return -1;
        }
        if ((unsigned long long)f->close_after - f->sent < limit)
            limit = (size_t)((unsigned long long)f->close_after - f->sent);
    }
    if (f->corrupt_byte >= 0 && (unsigned long long)f->corrupt_byte < f->sent + limit) {
        if ((unsigned long long)f->corrupt_byte > f->sent) {
            limit = (size_t)((unsigned long long)f->corrupt_byte - f->sent);
        } else { /* the byte to corrupt is the next one: send it alone, flipped */
            size_t i = 0;
            while (m->msg_iov[i].iov_len == 0)
                i++;
            unsigned char b = *(unsigned char *)m->msg_iov[i].iov_base ^ 0xff;
            ssize_t n = send(fd, &b, 1, flags);
            if (n == 1) {
                f->sent++;
                f->corrupt_byte = -1;
            }
            return n;
        }
    }
    struct iovec iov[8];
    struct msghdr mh = {.msg_iov = iov};
    size_t left = limit;
    for (size_t i = 0; i < m->msg_iovlen && i < 8 && left > 0; i++) {
        size_t l = m->msg_iov[i].iov_len < left ? m->msg_iov[i].iov_len : left;
        iov[mh.msg_iovlen++] = (struct iovec){m->msg_iov[i].iov_base, l};
        left -= l;
    }
    ssize_t n = sendmsg(fd, &mh, flags);
    if (n > 0)
        f->sent += (unsigned long long)n;
    return n;
}

static ssize_t fault_recv(void *user, int fd, void *buf, size_t len, int flags)
{
    struct fault *f = user;
    fault_delay(f);
    return recv(fd, buf, fault_short(f, len), flags);
}

/* A non-negative integer from s (up to end or ','); -1 when it is not one. */
static long long fault_num(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || (*end && *end != ',') || v < 0)
        return -1;
    return v;
}

static int fault_parse(pride_context_t *ctx, const char *spec, struct fault *f)
{
    *f = (struct fault){.close_after = -1, .corrupt_byte = -1,
                        .rng = UINT64_C(0x9E3779B97F4A7C15) ^ (uint64_t)(ctx->rank + 1)};
    for (const char *s = spec; *s;) {
        size_t n = strcspn(s, ",");
        const char *v = memchr(s, '=', n);
        long long num = v ? fault_num(v + 1) : 0;
        if (n == 8 && !strncmp(s, "short_io", 8)) {
            f->short_io = 1;
        } else if (v && v - s == 11 && !strncmp(s, "close_after", 11) && num >= 0) {
            f->close_after = num;
        } else if (v && v - s == 8 && !strncmp(s, "delay_ms", 8) && num >= 0 && num < 600000) {
            f->delay_ms = (int)num;
        } else if (v && v - s == 12 && !strncmp(s, "corrupt_byte", 12) && num >= 0) {
            f->corrupt_byte = num;
        } else {
            return pride_error(ctx, PRIDE_ERR_INVALID,
                               "PRIDE_FAULT=%s: cannot read \"%.*s\" (expected close_after=BYTES, "
                               "delay_ms=N, corrupt_byte=OFFSET or short_io, comma separated)",
                               spec, (int)n, s);
        }
        s += n;
        if (*s == ',')
            s++;
    }
    return PRIDE_OK;
}

static int faulty_open(pride_context_t *ctx, struct pride_tp **out)
{
    const char *spec = getenv("PRIDE_FAULT");
    const char *rs = getenv("PRIDE_FAULT_RANK");
    struct fault f;
    int st = fault_parse(ctx, spec ? spec : "", &f);
    if (st)
        return st;
    long long rank = rs && *rs ? fault_num(rs) : ctx->rank;
    if (rank < 0 || (rs && strchr(rs, ',')))
        return pride_error(ctx, PRIDE_ERR_INVALID, "PRIDE_FAULT_RANK=%s is not a rank", rs);
    struct pride_tp *tp;
    st = pride_tcp_ops.open(ctx, &tp);
    if (st)
        return st;
    if (rank == ctx->rank) {
        struct fault *fp = malloc(sizeof *fp);
        if (!fp) {
            pride_tcp_ops.close(tp);
            return pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for the fault injector");
        }
        *fp = f;
        tp->sys = (struct tcp_sys){.sendmsg = fault_sendmsg, .recv = fault_recv, .user = fp};
    }
    *out = tp;
    return PRIDE_OK;
}

static void faulty_close(struct pride_tp *tp)
{
    if (tp && tp->sys.sendmsg == fault_sendmsg)
        free(tp->sys.user);
    pride_tcp_ops.close(tp);
}

static int faulty_mem_reg(struct pride_tp *tp, void *buf, size_t len, void **mr)
{
    return pride_tcp_ops.mem_reg(tp, buf, len, mr);
}

static void faulty_mem_dereg(struct pride_tp *tp, void *mr)
{
    pride_tcp_ops.mem_dereg(tp, mr);
}

static int faulty_isend(struct pride_tp *tp, struct pride_xfer *x)
{
    return pride_tcp_ops.isend(tp, x);
}

static int faulty_irecv(struct pride_tp *tp, struct pride_xfer *x)
{
    return pride_tcp_ops.irecv(tp, x);
}

static int faulty_wait(struct pride_tp *tp, struct pride_xfer *const *xs, int n, int64_t deadline)
{
    return pride_tcp_ops.wait(tp, xs, n, deadline);
}

static void faulty_wake(struct pride_tp *tp)
{
    pride_tcp_ops.wake(tp);
}

static void faulty_broadcast_error(struct pride_tp *tp, uint64_t seq, int status,
                                   const char *reason)
{
    pride_tcp_ops.broadcast_error(tp, seq, status, reason);
}

const struct pride_tp_ops pride_faulty_ops = {
    .size = sizeof(struct pride_tp_ops),
    .name = "faulty",
    .open = faulty_open,
    .close = faulty_close,
    .mem_reg = faulty_mem_reg,
    .mem_dereg = faulty_mem_dereg,
    .isend = faulty_isend,
    .irecv = faulty_irecv,
    .wait = faulty_wait,
    .wake = faulty_wake,
    .broadcast_error = faulty_broadcast_error,
};
