/*
 * libFuzzer target: the tcp data path's receive side, the code that interprets what
 * a peer sends after the handshake. The transport file is compiled in and run for
 * real on a socket pair standing for rank 1; the input is a script: raw bytes,
 * well-formed frames (DATA or ERROR, right or wrong meta, optionally with a
 * corrupted payload byte), receives posted in between, and sends. Besides the
 * sanitizers' checks: with PRIDE_CHECKSUM on and no raw bytes in the script, a
 * receive never completes successfully with bytes other than the ones sent.
 */
#include "../../transport/tcp.c"

static const size_t fz_lens[] = {0, 1, 16, 100, 70000};
#define FZ_MAX_POSTS 16

static uint8_t fz_byte(uint64_t seq, uint32_t tag, size_t i)
{
    return (uint8_t)(seq * 31 + tag * 7 + i * 13 + (i >> 8));
}

struct fz {
    const uint8_t *p;
    size_t left;
};

static int fz_take(struct fz *f, uint8_t *out)
{
    if (!f->left)
        return 0;
    *out = *f->p++;
    f->left--;
    return 1;
}

static void fz_poll(struct pride_tp *tp, struct pride_xfer *sentinel)
{
    struct pride_xfer *xs[1] = {sentinel};
    tcp_wait(tp, xs, 1, 0);
}

/* Write all of buf into the socket, letting the transport read in between. */
static void fz_write(struct pride_tp *tp, struct pride_xfer *sentinel, int fd, const void *buf,
                     size_t len)
{
    const char *p = buf;
    for (int tries = 0; len > 0 && tries < 1000; tries++) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
        fz_poll(tp, sentinel);
        char sink[4096]; /* what rank 0 sends to rank 1 is read and dropped */
        while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
            ;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct fz f = {data + 1, size - 1};
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    /* room for whole frames, so a failing rank rarely waits to finish one */
    int room = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &room, sizeof room);
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &room, sizeof room);
    pride_context_t *ctx = calloc(1, sizeof *ctx);
    struct pride_tp *tp = calloc(1, sizeof *tp);
    struct pride_xfer *posts = calloc(FZ_MAX_POSTS + 1, sizeof *posts);
    uint8_t *bufs = calloc(FZ_MAX_POSTS, 70000);
    uint8_t *frame = malloc(sizeof(struct pride_frame_hdr) + 70000 + 4);
    if (!ctx || !tp || !posts || !bufs || !frame)
        abort();
    pthread_mutex_init(&ctx->mu, NULL);
    ctx->nranks = 2;
    ctx->timeout_ms = 1000;
    ctx->checksum = data[0] & 1;
    ctx->tp_ops = &pride_tcp_ops;
    ctx->tp = tp;
    tp->ctx = ctx;
    tp->nranks = 2;
    tp->sys = (struct tcp_sys){.sendmsg = sys_sendmsg, .recv = sys_recv};
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    tp->peers = calloc(2, sizeof *tp->peers);
    tp->epfd = epoll_create1(EPOLL_CLOEXEC);
    tp->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!tp->peers || tp->epfd < 0 || tp->wakefd < 0)
        abort();
    tp->peers[0] = (struct tcp_peer){.fd = -1, .rank = 0};
    tp->peers[1] = (struct tcp_peer){.fd = sv[0], .rank = 1, .stage = malloc(TCP_STAGE_SIZE)};
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = WAKE_ID};
    epoll_ctl(tp->epfd, EPOLL_CTL_ADD, tp->wakefd, &ev);
    ev = (struct epoll_event){.events = EPOLLIN, .data.u32 = 1};
    epoll_ctl(tp->epfd, EPOLL_CTL_ADD, sv[0], &ev);

    const struct pride_meta meta = {.coll = PRIDE_COLL_P2P, .root = -1};
    struct pride_xfer *sentinel = &posts[FZ_MAX_POSTS];
    *sentinel = (struct pride_xfer){.peer = 1, .seq = 1000, .meta = meta};
    tcp_irecv(tp, sentinel);
    int nposts = 0, raw = 0;
    uint8_t op;
    while (fz_take(&f, &op)) {
        uint8_t a = 0, b = 0, c = 0;
        fz_take(&f, &a);
        fz_take(&f, &b);
        fz_take(&f, &c);
        size_t len = fz_lens[c % 5];
        if (op % 4 == 0) { /* raw bytes */
            size_t n = a < f.left ? a : f.left;
            raw = 1;
            fz_write(tp, sentinel, sv[1], f.p, n);
            f.p += n;
            f.left -= n;
        } else if (op % 4 == 1) { /* a frame: seq a%4, tag b, payload length c */
            struct pride_frame_hdr h = {.magic = PRIDE_FRAME_MAGIC,
                                        .version = PRIDE_PROTO_VERSION,
                                        .kind = PRIDE_FRAME_DATA,
                                        .tag = b,
                                        .seq = a % 4,
                                        .meta = meta,
                                        .len = len};
            if (op & 0x10)
                h.meta.count = 1; /* another collective's arguments */
            if (op & 0x20) {
                h.kind = PRIDE_FRAME_ERROR;
                h.status = PRIDE_ERR_PEER;
                h.len = len > PRIDE_FRAME_MAX_REASON ? 16 : len;
            }
            for (size_t i = 0; i < h.len; i++)
                frame[sizeof h + i] = fz_byte(h.seq, h.tag, i);
            size_t total = sizeof h + h.len;
            if (ctx->checksum && h.kind == PRIDE_FRAME_DATA) {
                h.flags = PRIDE_FRAME_F_CRC32C;
                h.status = (int32_t)crc32c(0, &h, sizeof h);
                uint32_t crc = crc32c(0, frame + sizeof h, h.len);
                memcpy(frame + total, &crc, 4);
                total += 4;
            }
            memcpy(frame, &h, sizeof h);
            if ((op & 0x40) && h.len) /* corrupted on the way */
                frame[sizeof h + (size_t)(a * 7 + b) % h.len] ^= 0x20;
            fz_write(tp, sentinel, sv[1], frame, total);
        } else if (op % 4 == 2 && nposts < FZ_MAX_POSTS) { /* post a receive */
            struct pride_xfer *x = &posts[nposts];
            *x = (struct pride_xfer){.peer = 1, .seq = a % 4, .tag = b, .meta = meta,
                                     .buf = bufs + (size_t)nposts * 70000, .len = len};
            nposts++;
            tcp_irecv(tp, x);
        } else if (op % 4 == 3 && nposts < FZ_MAX_POSTS) { /* send a frame to rank 1 */
            struct pride_xfer *x = &posts[nposts];
            *x = (struct pride_xfer){.peer = 1, .seq = a % 4, .tag = b, .meta = meta,
                                     .buf = bufs, .len = len, .is_send = 1};
            nposts++;
            tcp_isend(tp, x);
        }
        fz_poll(tp, sentinel);
    }
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 4; i++)
        fz_poll(tp, sentinel);
    if (ctx->checksum && !raw) {
        for (int i = 0; i < nposts; i++) {
            const struct pride_xfer *x = &posts[i];
            if (x->is_send || !x->complete || x->status != PRIDE_OK)
                continue;
            for (size_t k = 0; k < x->len; k++)
                if (((uint8_t *)x->buf)[k] != fz_byte(x->seq, x->tag, k))
                    __builtin_trap();
        }
    }
    /* rank 1 goes away, and the transport lets go of every posted receive and send,
       as when a collective fails */
    close(sv[1]);
    tcp_broadcast_error(tp, 0, PRIDE_ERR_PEER, "fuzz run over");
    tcp_close(tp);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx);
    free(posts);
    free(bufs);
    free(frame);
    return 0;
}
