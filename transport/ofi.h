/*
 * The ofi (libfabric) backend's state, shared by its files: ofi_open.c (provider
 * choice, endpoint, address exchange, liveness of peers on this host), ofi_mr.c
 * (memory registration) and ofi.c (the data path: tagged messages matched by
 * (peer, seq, tag), completions, blocking waits, error broadcast).
 *
 * A frame travels as one libfabric tagged message, the 48-byte header and then the
 * payload, when the payload is at most OFI_EAGER bytes; a larger payload follows its
 * header as a second message under its own tag, and the receiver posts the receive
 * for it only once the header has shown the sender means the same collective and
 * exactly the expected length. Every receive for a header has room for a header and
 * OFI_EAGER bytes, so no message is ever longer than the receive that matches it:
 * the providers' truncation paths (which drop connections in tcp;ofi_rxm, or crash,
 * and hang in shm for large messages) are never taken by a mismatch.
 */
#ifndef PRIDE_OFI_H
#define PRIDE_OFI_H

#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/uio.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_tagged.h>

#include "ctx.h"
#include "transport.h"

/* Tag layout: bit 63 marks control (ERROR) frames, whose low 32 bits carry the
   sender's rank; bit 62 marks the separate payload of a large frame; data frames
   carry 30 bits of seq above the 32-bit message tag. The header carries the full
   seq, so the receiver still checks all 64 bits. */
#define OFI_TAG_CTRL (UINT64_C(1) << 63)
#define OFI_TAG_PAYLOAD (UINT64_C(1) << 62)
#define OFI_TAG_SEQ_BITS 30

/* Payloads up to OFI_EAGER bytes travel with their header. An op's own buffer holds
   the room after a header receive, an injected frame or an ERROR frame's reason. */
#define OFI_EAGER 4096
#define OFI_SMALL (OFI_EAGER + sizeof(struct pride_frame_hdr))

enum ofi_op_kind {
    OFI_OP_SEND,         /* a frame: header, and the payload when it is eager */
    OFI_OP_SEND_PAYLOAD, /* the payload of a large frame */
    OFI_OP_RECV,         /* a frame's header (and eager payload) */
    OFI_OP_RECV_PAYLOAD, /* posted once a large frame's header checked out */
    OFI_OP_ERR_SEND,
    OFI_OP_ERR_RECV,
};
enum ofi_op_state { OFI_OP_FREE, OFI_OP_PENDING, OFI_OP_POSTED };

struct ofi_mr;

/* One libfabric operation. Its fi_context2 comes first: completions hand back its
   address as op_context. Ops live in slabs that are registered when the provider
   wants local registration, so header and small buffer always have a descriptor. */
struct ofi_op {
    struct fi_context2 fctx;
    struct ofi_op *prev, *next; /* the free, pending or posted list */
    struct ofi_slab *slab;
    enum ofi_op_kind kind;
    enum ofi_op_state state;
    int cancelled;
    int inject;             /* a small send copied whole into small: no completion */
    struct pride_xfer *x;   /* user transfer, or NULL for control frames */
    struct ofi_mr *mr;      /* payload registration, or NULL */
    int peer;
    struct fi_msg_tagged msg;
    struct iovec iov[3];
    void *desc[3];
    struct pride_frame_hdr hdr; /* sent, or landed here */
    char small[OFI_SMALL];      /* see OFI_SMALL */
};

#define OFI_SLAB_OPS 64
struct ofi_slab {
    struct ofi_slab *next;
    struct fid_mr *mr; /* NULL unless local registration is required */
    struct ofi_op ops[OFI_SLAB_OPS];
};

/* A registration of user memory: shared by the operations in flight on it, or kept
   by mem_reg until mem_dereg. */
struct ofi_mr {
    struct ofi_mr *next;
    uintptr_t lo, hi;
    struct fid_mr *mr;
    void *desc;
    int refs;
    int kept; /* from mem_reg */
};

struct ofi_list {
    struct ofi_op *head, *tail;
};

struct ofi_peer {
    fi_addr_t addr;
    int pidfd;        /* this host and pid namespace: readable once the peer exits */
    int bell;         /* a copy of its wake-up eventfd (CQ without wait fd), or -1 */
    int64_t dead_ns;  /* when it was seen to exit, or 0 */
};

/* The meta of recent sequence numbers, for the ERROR frames that name them. */
#define OFI_SEQ_SLOTS 64
struct ofi_seqslot {
    uint64_t seq;
    int valid;
    struct pride_meta meta;
};

struct pride_tp {
    pride_context_t *ctx;
    int rank, nranks;
    char prov[64];

    struct fi_info *info;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_cq *cq;
    struct fid_av *av;
    struct fid_ep *ep;
    int cq_fd;          /* the CQ's wait fd, or -1: sleep-backoff polling */
    int wakefd;         /* eventfd: abort, failure, posts from other threads */
    int mr_local;       /* the provider needs descriptors for local buffers */
    uint64_t mr_key;    /* next requested key (without FI_MR_PROV_KEY) */
    size_t inject_size;
    struct ofi_peer *peers;
    struct pollfd *pfds; /* the poller's: wake fd, CQ fd, one pidfd per peer */
    int *pwho;           /* the peer of each pidfd in pfds, or -1 */

    pthread_mutex_t mu; /* guards everything here, and every libfabric call */
    pthread_cond_t cv;
    int polling;        /* a thread is blocked on the wait fds */
    int detached;       /* failure: posted work dropped, nothing more is accepted */
    int64_t backoff_ns; /* current sleep when the CQ has no wait fd */
    int bells;          /* every peer has a doorbell: sleeps can be long */

    struct ofi_slab *slabs;
    struct ofi_list free_ops, pending, posted;
    struct ofi_mr *mrs;
    struct ofi_seqslot seqs[OFI_SEQ_SLOTS];
};

/* ofi_open.c */
int ofi_open(pride_context_t *ctx, struct pride_tp **out);
void ofi_close(struct pride_tp *tp);
/* Record a libfabric failure during start-up; returns PRIDE_ERR_TRANSPORT. */
int ofi_setup_error(pride_context_t *ctx, const char *call, int ret);

/* ofi_mr.c: registration shared by overlapping operations; all under tp->mu. */
int ofi_mr_get(struct pride_tp *tp, void *buf, size_t len, int kept, struct ofi_mr **out);
void ofi_mr_put(struct pride_tp *tp, struct ofi_mr *m);
void ofi_mr_unkeep(struct pride_tp *tp, struct ofi_mr *m);
int ofi_mr_reg_raw(struct pride_tp *tp, void *buf, size_t len, struct fid_mr **mr);
void ofi_mr_release_all(struct pride_tp *tp);

/* ofi.c: ops allocation, used by ofi_open.c to post the standing ERROR receive. */
struct ofi_op *ofi_op_new(struct pride_tp *tp);
int ofi_post_err_recv(struct pride_tp *tp);

#endif
