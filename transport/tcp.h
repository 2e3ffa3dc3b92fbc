/*
 * The tcp backend's state, shared by its two files: tcp_connect.c (addresses,
 * listen, full-mesh connect, handshake) and tcp.c (the data path: framed messages
 * over non-blocking sockets, matched by (peer, seq, tag), driven by epoll).
 */
#ifndef PRIDE_TCP_H
#define PRIDE_TCP_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "ctx.h"
#include "transport.h"

/* A frame that arrived before its receive was posted. */
struct tcp_unexp {
    struct tcp_unexp *next;
    struct pride_frame_hdr hdr;
    char *data;
    size_t cap; /* data's size, for the context's buffer cache */
};



enum tcp_rstate { TCP_R_HDR, TCP_R_PAYLOAD, TCP_R_TRAILER };

struct tcp_peer {
    int fd; /* -1 for this rank itself */
    int rank;
    int dead;
    int cut;      /* its connection was shut because a frame could not be finished */
    int refused;  /* dead because it sent a frame of another collective: still writable */
    int want_out; /* EPOLLOUT registered */
    /* sends in order; the head may be partly written */
    struct pride_xfer *sq_head, *sq_tail;
    /* receives posted for this peer, and frames that came first */
    struct pride_xfer *posted_head, *posted_tail;
    struct tcp_unexp *ux_head, *ux_tail;
    /* the frame being read */
    enum tcp_rstate rstate;
    struct pride_frame_hdr rhdr;
    size_t rhdr_got;
    char *rdst;                 /* where the payload goes */
    size_t rlen, rgot;          /* payload length and bytes read */
    struct pride_xfer *rx;      /* posted receive being filled, or NULL */
    struct tcp_unexp *rux;      /* unexpected frame being filled, or NULL */
    char reason[PRIDE_FRAME_MAX_REASON + 1]; /* ERROR frame payload */
    /* PRIDE_FRAME_F_CRC32C: the payload's CRC so far and the trailer being read, and
       the trailer of the frame being written */
    uint32_t rcrc;
    uint8_t rtrail[4], wtrail[4];
    size_t rtrail_got;
    /* staging buffer for reads of small frames */
    char *stage;
    int big; /* the last frame's payload went straight to its buffer: read the next
                header alone, or the stage would take (and copy) the start of its payload */
    size_t stage_off, stage_len;
};

/* The meta of recent sequence numbers, to check frames that come before their receive. */
#define TCP_SEQ_SLOTS 64
struct tcp_seqslot {
    uint64_t seq;
    int valid;
    struct pride_meta meta;
};

/* The socket calls of the data path. tcp_open fills them with the real ones; the
   fault-injecting wrapper (faulty.c) replaces them. */
struct tcp_sys {
    ssize_t (*sendmsg)(void *user, int fd, const struct msghdr *m, int flags);
    ssize_t (*recv)(void *user, int fd, void *buf, size_t len, int flags);
    void *user;
};

struct pride_tp {
    pride_context_t *ctx;
    int rank, nranks;
    int epfd;
    int wakefd; /* eventfd: wakes the poller for abort/failure */
    struct tcp_peer *peers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int polling;   /* a thread is inside epoll_wait */
    int detached;  /* failure: peers told, nothing more is accepted */
    int dropped;   /* failure: no posted record or caller buffer is referenced any more */
    uint64_t last_seq; /* the latest collective this rank posted for */
    struct tcp_seqslot seqs[TCP_SEQ_SLOTS];
    struct tcp_sys sys;
};

#define TCP_STAGE_SIZE (64 * 1024)

/* What each rank publishes through the store under "tcp-addr/RANK". */
struct tcp_addr_rec {
    uint32_t magic;    /* AUTH_HELLO_MAGIC */
    uint32_t version;  /* AUTH_HELLO_VERSION */
    char host_id[112]; /* hostname and network namespace */
    uint8_t addr[16];  /* IPv4 in the first 4 bytes, or IPv6 */
    uint32_t scope_id;
    uint16_t port;
    uint8_t family;    /* 4 or 6 */
    uint8_t bound;     /* 1: bound to addr only; 0: listening on every address */
};

/* tcp_connect.c: bind, publish, connect every pair, handshake; fills peers[].fd. */
int tcp_connect_all(struct pride_tp *tp);

#endif
