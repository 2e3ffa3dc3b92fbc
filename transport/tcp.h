/*
 * The tcp backend's state, shared by its two files: tcp_connect.c (addresses,
 * listen, full-mesh connect, handshake) and tcp.c (the data path: framed messages
 * over non-blocking sockets, matched by (peer, seq, tag), driven by epoll).
 */
#ifndef PRIDE_TCP_H
#define PRIDE_TCP_H

#include <pthread.h>
#include <stdint.h>

#include "ctx.h"
#include "transport.h"

/* A frame that arrived before its receive was posted. */
struct tcp_unexp {
    struct tcp_unexp *next;
    struct pride_frame_hdr hdr;
    char *data;
    size_t got;
};

enum tcp_rstate { TCP_R_HDR, TCP_R_PAYLOAD };

struct tcp_peer {
    int fd; /* -1 for this rank itself */
    int rank;
    int dead;
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
    /* staging buffer for reads of small frames */
    char *stage;
    size_t stage_off, stage_len;
};

/* The meta of recent sequence numbers, to check frames that come before their receive. */
#define TCP_SEQ_SLOTS 64
struct tcp_seqslot {
    uint64_t seq;
    int valid;
    struct pride_meta meta;
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
    int detached;  /* failure: all posted work dropped, nothing more is accepted */
    struct tcp_seqslot seqs[TCP_SEQ_SLOTS];
};

#define TCP_STAGE_SIZE (64 * 1024)

/* tcp_connect.c: bind, publish, connect every pair, handshake; fills peers[].fd. */
int tcp_connect_all(struct pride_tp *tp);

#endif
