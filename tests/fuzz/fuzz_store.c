/*
 * libFuzzer target: the tcp store server's request parser, the code rank 0 runs on
 * whatever connects to its store port. The server file is compiled in here so its
 * static functions run unchanged: two client connections (socket pairs) each get a
 * part of the input as their byte stream, the server reads, parks, answers and
 * condemns them exactly as in its poll loop, and everything is freed afterwards.
 */
#include "../../transport/store_tcp.c"

static void drain(int fd)
{
    char buf[4096];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 60000)
        return 0;
    size_t cut = (((size_t)data[0] << 8) | data[1]) % (size - 1);
    data += 2;
    size -= 2;
    struct tcp_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return 0;
    srv->lfd = srv->wakefd = -1;
    srv->conns = calloc(2, sizeof *srv->conns);
    int peer[2] = {-1, -1};
    for (int i = 0; i < 2; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
            abort();
        const uint8_t *part = i == 0 ? data : data + cut;
        size_t len = i == 0 ? cut : size - cut;
        if (len && send(sv[1], part, len, MSG_NOSIGNAL) != (ssize_t)len)
            abort();
        shutdown(sv[1], SHUT_WR);
        srv->conns[srv->nconns++] = (struct tcp_conn){.fd = sv[0]};
        peer[i] = sv[1];
    }
    for (size_t round = 0; round < size + 8; round++) {
        int busy = 0;
        for (size_t i = 0; i < srv->nconns; i++) {
            struct tcp_conn *c = &srv->conns[i];
            if (c->dead)
                continue;
            size_t before = c->hdr_len + c->body_len;
            int had_out = c->out != NULL;
            if (c->out)
                tcp_conn_flush(c);
            if (!c->dead && !c->out)
                tcp_conn_read(srv, c);
            busy |= c->hdr_len + c->body_len != before || had_out != (c->out != NULL);
        }
        drain(peer[0]);
        drain(peer[1]);
        if (!busy)
            break;
    }
    close(peer[0]);
    close(peer[1]);
    tcp_server_free(srv);
    return 0;
}
