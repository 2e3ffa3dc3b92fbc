/*
 * The verbs backend's state, shared by its files: verbs_connect.c (device, port and
 * address; rdmacm listen and full-mesh connect with a handshake in the private
 * data), verbs.c (the data path) and verbs_mr.c (memory registrations).
 *
 * Protocol on each RC queue pair. Every send carries a struct verbs_wire: a type,
 * returned credits, and the frame header of transport.h. Messages up to
 * VERBS_EAGER_MAX payload bytes go eagerly, copied into a pre-registered bounce
 * buffer. Larger ones use a rendezvous: the sender sends RTS (the frame header), the
 * receiver matches it like an eager frame (same meta and length checks), registers
 * its buffer and answers CTS (address, rkey, its slot), and the sender RDMA-writes
 * the payload straight into the receiver's buffer, the last write carrying the slot
 * as immediate data so the receiver learns it has landed.
 *
 * Credits: each side posts VERBS_DEPTH receive buffers per peer and may send only
 * while the peer has a buffer posted for it. Every message and every write with
 * immediate consumes one; a receiver returns them on any message it sends, or in a
 * CREDIT message once VERBS_CREDIT_BATCH have piled up. The last credit is kept for
 * CREDIT (and ERROR) messages, so two peers never wait on each other for credits,
 * and receivers never run out of posted buffers (no RNR in normal operation).
 */
#ifndef PRIDE_VERBS_H
#define PRIDE_VERBS_H

#include <pthread.h>
#include <stdint.h>

#include "ctx.h"
#include "transport.h"
#include "verbs_api.h"

#define VERBS_MAGIC 0x56445250u /* "PRDV" */
#define VERBS_EAGER_MAX 8192
#define VERBS_DEPTH 32 /* receive buffers posted per peer: the peer's credits */
#define VERBS_SBUFS (VERBS_DEPTH + 4)
#define VERBS_SQ_DEPTH 128
#define VERBS_CREDIT_BATCH (VERBS_DEPTH / 2)

enum verbs_msg_type {
    VERBS_MSG_EAGER = 1, /* frame header and payload */
    VERBS_MSG_RTS,       /* frame header; the payload will be written */
    VERBS_MSG_CTS,       /* where to write it */
    VERBS_MSG_CREDIT,    /* only returns credits */
    VERBS_MSG_ERROR,     /* ERROR frame header and its reason */
};

struct verbs_wire {
    uint32_t magic;
    uint8_t type;
    uint8_t pad0;
    uint16_t credits; /* receive buffers reposted for the peer since the last report */
    uint32_t cookie;  /* RTS, CTS: the sender's rendezvous slot */
    uint32_t rslot;   /* CTS: the receiver's slot, sent back as immediate data */
    uint64_t raddr;   /* CTS */
    uint32_t rkey;    /* CTS */
    uint32_t pad1;
    struct pride_frame_hdr hdr; /* EAGER, RTS, ERROR */
};

_Static_assert(sizeof(struct verbs_wire) == 80, "verbs wire header is 80 bytes");

#define VERBS_BUF_SIZE (sizeof(struct verbs_wire) + VERBS_EAGER_MAX)

/* Work request ids: kind, peer, index. */
enum verbs_wr_kind { VERBS_WR_RECV = 1, VERBS_WR_SEND, VERBS_WR_WRITE, VERBS_WR_WRITE_LAST };

/* ---- registrations (verbs_mr.c) ---- */

struct verbs_mr {
    struct verbs_mr *next;
    uintptr_t lo, hi; /* page-aligned range */
    int access;
    int refs; /* transfers using it, and mem_reg's caller until mem_dereg */
    struct ibv_mr *mr; /* NULL once revoked */
};

struct verbs_mrcache {
    const struct verbs_api *api;
    struct ibv_pd *pd;
    struct verbs_mr *head;
};

/* A registration covering [buf, buf+len) with at least access; 0 or an errno. */
int verbs_mr_get(struct verbs_mrcache *c, void *buf, size_t len, int access,
                 struct verbs_mr **out);
void verbs_mr_put(struct verbs_mrcache *c, struct verbs_mr *m);
/* Deregister every region now (entries stay until their users let go). */
void verbs_mr_revoke(struct verbs_mrcache *c);
/* Deregister and free everything. */
void verbs_mr_clear(struct verbs_mrcache *c);

/* ---- the transport ---- */

struct verbs_unexp { /* a frame (or RTS) that came before its receive was posted */
    struct verbs_unexp *next;
    struct pride_frame_hdr hdr;
    char *data;
    int rdv;         /* an RTS: the payload is still with the sender */
    uint32_t cookie; /* its rendezvous slot there */
};

enum verbs_op_kind { VERBS_OP_EAGER, VERBS_OP_RTS, VERBS_OP_CTS, VERBS_OP_WRITE };

struct verbs_op { /* something to send once credits, buffers and queue room allow */
    struct verbs_op *next;
    int kind;
    struct pride_xfer *x; /* EAGER */
    uint32_t slot;        /* RTS, CTS, WRITE */
};

enum verbs_rdv_state { VERBS_RDV_RTS, VERBS_RDV_WAIT_CTS, VERBS_RDV_WRITING, VERBS_RDV_CTS,
                       VERBS_RDV_WAIT_DATA };

struct verbs_rdv { /* one rendezvous in progress, on either side */
    int used;
    uint16_t gen; /* with the index, makes the cookie / immediate */
    int peer;
    int state;
    struct pride_xfer *x;
    struct verbs_mr *mr;
    uint32_t cookie;          /* receiver: the sender's slot */
    uint64_t raddr;           /* sender: from the CTS */
    uint32_t rkey, rimm;
    size_t posted;            /* sender: bytes of writes posted */
};

struct verbs_peer {
    int rank;
    struct rdma_cm_id *id;
    struct ibv_qp *qp;
    int connected, dead;
    int left_early; /* DISCONNECTED came during start-up: handled by the first progress */
    int credits;   /* messages this rank may still send to the peer */
    int to_return; /* buffers reposted for the peer, not yet reported */
    int sq_used;   /* work requests outstanding on the QP */
    int rdv_active;
    char *rbuf, *sbuf;
    int sfree[VERBS_SBUFS];
    int nsfree;
    struct verbs_op *op_head, *op_tail;
    struct pride_xfer *posted_head, *posted_tail;
    struct verbs_unexp *ux_head, *ux_tail;
};

#define VERBS_SEQ_SLOTS 64
struct verbs_seqslot {
    uint64_t seq;
    int valid;
    struct pride_meta meta;
};

struct pride_tp {
    pride_context_t *ctx;
    int rank, nranks;
    const struct verbs_api *api;
    char devname[64];
    int port;
    uint32_t max_msg; /* largest single RDMA write */
    struct rdma_event_channel *ev;
    struct rdma_cm_id *listen_id;
    struct ibv_pd *pd;
    struct ibv_comp_channel *ch;
    struct ibv_cq *cq;
    int cq_armed;
    char *slab;
    struct ibv_mr *slab_mr;
    struct verbs_mrcache mrs;
    struct verbs_peer *peers;
    struct verbs_rdv *rdv;
    uint32_t nrdv;
    uint64_t events; /* completions and CM events handled: "did anything move?" */
    int wakefd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int polling;
    int detached;
    struct verbs_seqslot seqs[VERBS_SEQ_SLOTS];
};

/* verbs_connect.c: device, listen, publish, connect all pairs. */
int verbs_connect_all(struct pride_tp *tp);

/* verbs.c: the PD, CQ, channel and bounce buffers (once the device context is known),
   and a peer's QP with its receive buffers posted. */
int verbs_resources(struct pride_tp *tp, struct ibv_context *verbs);
int verbs_peer_setup(struct pride_tp *tp, struct verbs_peer *p, struct rdma_cm_id *id);

#endif
