/*
 * The software model of the verbs and rdmacm calls, shared by its three files:
 * verbs_model.c (device, protection domain, memory regions, completion queues and
 * channels, queue pairs and their state machine, posting and polling),
 * verbs_model_cm.c (the connection manager: event channels, ids, address and route
 * resolution, connect / accept / reject / disconnect), and verbs_model_wire.c (the
 * "NIC": a thread per process that moves packets between processes).
 *
 * The one idea: each process is one host with one emulated NIC, and the fabric is a
 * directory. A listening rdmacm id is a Unix SOCK_SEQPACKET socket named
 * DIR/IP:PORT; a connection is one such socket, carrying the connection manager's
 * messages (REQ, REP, RTU, REJ, DREQ, DREP) and then the queue pair's packets (at
 * most VM_MTU payload bytes each). The NIC thread plays both halves of RC: as
 * requester it reads the user's registered memory into packets, and completes send
 * work requests when the responder acknowledges them; as responder it checks keys,
 * bounds and permissions, writes into registered memory, consumes receive WQEs, and
 * answers with ACK or NAK (RNR, remote access, invalid request, remote operation).
 * Everything is under one mutex; the NIC thread sleeps in poll() when idle.
 */
#ifndef PRIDE_VERBS_MODEL_H
#define PRIDE_VERBS_MODEL_H

#include <pthread.h>
#include <stdint.h>

#include "verbs_api.h"

#define VM_MTU (64 * 1024)          /* payload bytes per packet */
/* port max_msg_sz: real NICs say 1 or 2 GiB; the model says 8 MiB so that the
   backend's cutting of large RDMA writes runs in the tests */
#define VM_MAX_MSG (UINT64_C(8) << 20)
#define VM_MAX_WR 16384
#define VM_MAX_SGE 32
#define VM_MAX_INLINE 256
#define VM_MAX_CQE (1 << 20)
#define VM_REQ_PDATA 56   /* private data sizes an IB CM carries for rdmacm */
#define VM_REP_PDATA 196
#define VM_REJ_PDATA 148
#define VM_RNR_DELAY_NS 1000000 /* fixed RNR back-off (the RNR timer is not decoded) */
#define VM_IPV4 0x7f000001u     /* the emulated RDMA interface's address, 127.0.0.1 */

/* Wire packet types between NICs. */
enum vm_pkt_type {
    VM_PKT_REQ = 1,
    VM_PKT_REP,
    VM_PKT_RTU,
    VM_PKT_REJ,
    VM_PKT_DREQ,
    VM_PKT_DREP,
    VM_PKT_DATA,
    VM_PKT_ACK,
    VM_PKT_NAK,
};

enum vm_op { VM_OP_SEND = 1, VM_OP_SEND_IMM, VM_OP_WRITE, VM_OP_WRITE_IMM };

enum vm_nak {
    VM_NAK_RNR = 1,  /* no receive WQE: retry later */
    VM_NAK_ACCESS,   /* rkey, bounds or permission */
    VM_NAK_INVALID,  /* message longer than the receive WQE */
    VM_NAK_OP,       /* responder could not place the data (its local error) */
    VM_NAK_DROPPED,  /* responder QP not ready: stands for the requester's retry timeout */
};

#define VM_F_FIRST 1u
#define VM_F_LAST 2u

struct vm_pkt {
    uint8_t type;  /* enum vm_pkt_type */
    uint8_t op;    /* DATA: enum vm_op; NAK: enum vm_nak */
    uint8_t flags; /* VM_F_* */
    uint8_t pdlen; /* CM: private data bytes in the payload */
    uint32_t epoch;
    uint64_t msg;  /* requester's message number on this connection */
    uint64_t total;
    uint64_t offset;
    uint64_t raddr;
    uint32_t rkey;
    uint32_t imm;
    uint32_t qpn;  /* CM: the sender's QP number */
    uint32_t len;  /* payload bytes that follow */
    uint8_t retry_cnt, rnr_retry, resp_res, init_depth;
    uint32_t addr; /* CM REQ: the requester's IPv4 address (network order) */
    uint16_t port; /* CM REQ: its port (network order) */
    uint16_t pad;
};

struct vm_ctx {
    struct ibv_context ctx;
};

struct vm_pd {
    struct ibv_pd pd;
    int users; /* MRs and QPs on it */
};

struct vm_mr {
    struct ibv_mr mr;
    struct vm_mr *next;
    int access;
};

struct vm_channel {
    struct ibv_comp_channel ch;
    int wfd; /* write end of the pipe behind ch.fd */
    int cqs;
};

struct vm_cq {
    struct ibv_cq cq;
    struct vm_cq *next;
    uint64_t serial; /* what the channel's pipe carries */
    struct ibv_wc *ring;
    int cap, head, count;
    int armed;
    int overflow;
    int qps;
    unsigned got_events, acked_events;
};

struct vm_sge {
    uint64_t addr;
    uint32_t len, lkey;
};

struct vm_swr { /* a posted send work request */
    uint64_t wr_id;
    uint64_t msg;
    uint64_t total;
    uint64_t raddr;
    uint32_t rkey, imm;
    int opcode; /* enum ibv_wr_opcode */
    int signaled;
    int rnr_left;
    int nsge;
    struct vm_sge sge[VM_MAX_SGE];
    char *inl; /* inline data copied at post time, or NULL */
};

struct vm_rwr { /* a posted receive work request */
    uint64_t wr_id;
    int nsge;
    struct vm_sge sge[VM_MAX_SGE];
};

struct vm_cmid;

struct vm_qp {
    struct ibv_qp qp;
    struct vm_qp *next;
    struct vm_cmid *cmid; /* the rdmacm id carrying it, or NULL */
    struct ibv_qp_cap cap;
    int sq_sig_all;
    /* attributes set through modify_qp */
    int port, access, timeout, retry_cnt, rnr_retry, min_rnr_timer;
    uint32_t dest_qpn;
    /* send queue: [sq_head, sq_tail) posted, [sq_head, sq_tx) transmitted */
    struct vm_swr *sq;
    uint64_t sq_head, sq_tx, sq_tail;
    uint64_t tx_off;       /* bytes of sq[sq_tx] sent */
    uint64_t next_msg;
    uint32_t epoch;        /* bumped when the requester goes back after an RNR NAK */
    int64_t rnr_until_ns;  /* requester waits until then after an RNR NAK */
    /* receive queue */
    struct vm_rwr *rq;
    uint64_t rq_head, rq_tail;
    /* responder */
    uint64_t expect;       /* next message number to execute */
    uint32_t min_epoch;    /* packets of older epochs were sent before an RNR NAK */
    int in_msg;            /* a message is being placed */
    int in_op;
    uint64_t in_total, in_got;
    struct vm_rwr in_wqe;  /* the receive WQE it consumes, if in_has_wqe */
    int in_has_wqe;
    struct vm_mr *in_mr;   /* RDMA write target */
    uint64_t in_raddr;
    uint32_t in_rkey, in_imm;
    /* faults */
    uint64_t fault_err_after; /* 0: none */
    uint64_t bytes_in;
    int fault_bad_rkey;
};

enum vm_cm_state {
    VM_CM_IDLE = 0,
    VM_CM_BOUND,
    VM_CM_LISTEN,
    VM_CM_ADDR,       /* address resolved */
    VM_CM_ROUTE,      /* route resolved */
    VM_CM_CONNECTING, /* REQ sent */
    VM_CM_REQ_RCVD,   /* passive: CONNECT_REQUEST delivered */
    VM_CM_ACCEPTED,   /* passive: REP sent */
    VM_CM_ESTABLISHED,
    VM_CM_DISCONNECTING,
    VM_CM_DONE, /* rejected, disconnected or failed */
};

struct vm_conn;

struct vm_cmid {
    struct rdma_cm_id id;
    struct vm_cmid *next;
    enum vm_cm_state state;
    int lfd;               /* listening socket, or -1 */
    char path[108];        /* its name in the fabric directory */
    struct vm_conn *conn;  /* the connection, or NULL */
    uint32_t remote_qpn;
    uint8_t retry_cnt, rnr_retry; /* from the connect parameters */
    int disconnected;      /* DISCONNECTED delivered */
};

struct vm_ctl { /* a control packet waiting to be written */
    struct vm_ctl *next;
    size_t len;
    int close_after; /* shut the connection once written (REJ) */
    char data[];
};

struct vm_conn {
    struct vm_conn *next;
    int fd;
    struct vm_cmid *id;     /* NULL until a passive connection's REQ arrived */
    struct vm_cmid *listen; /* passive: the listener it came in on */
    int closed;             /* no more traffic either way */
    int wdead;              /* writing failed: the peer is gone, its last words are read */
    int blocked;            /* the last write would have blocked */
    struct vm_ctl *ctl_head, *ctl_tail;
    /* a built data packet the socket has not taken yet */
    char *tx;
    size_t tx_len;
    int tx_full;
    uint64_t tx_msg, tx_off;
    uint32_t tx_epoch;
    char *rx;
};

struct vm_cmev {
    struct rdma_cm_event ev;
    struct vm_cmev *next;
    uint8_t pdata[VM_REP_PDATA];
};

struct vm_evch {
    struct rdma_event_channel ch;
    int wfd;
    struct vm_cmev *head, *tail;
};

struct vm_model {
    pthread_mutex_t mu;
    int users;
    char dir[4096];
    pthread_t nic;
    int stop;
    int kickfd;
    uint64_t gen; /* bumped when a socket the NIC may be polling goes away */
    struct ibv_device dev;
    struct vm_ctx *cmctx; /* the context rdmacm ids live on */
    struct vm_mr *mrs;
    struct vm_cq *cqs;
    struct vm_qp *qps;
    struct vm_cmid *ids;
    struct vm_conn *conns;
    uint32_t next_key, next_qpn;
    uint64_t next_cq_serial;
    unsigned next_port;
};

extern struct vm_model vm;

/* verbs_model.c, called with vm.mu held */
void vm_kick(void);
void vm_cq_push(struct vm_cq *cq, const struct ibv_wc *wc);
int vm_qp_modify(struct vm_qp *qp, struct ibv_qp_attr *attr, int mask);
void vm_qp_error(struct vm_qp *qp, enum ibv_wc_status head_status);
void vm_qp_local_error(struct vm_qp *qp, uint64_t idx, enum ibv_wc_status status);
struct vm_mr *vm_mr_by_key(uint32_t key, int rkey);
struct vm_qp *vm_qp_create(struct ibv_pd *pd, struct ibv_qp_init_attr *attr);
void vm_qp_destroy(struct vm_qp *qp);
struct ibv_context *vm_cm_context(void);
int vm_acquire(void);
void vm_release(void);

/* verbs_model_cm.c: the rdmacm calls (they take vm.mu themselves) */
struct rdma_event_channel *vm_rdma_create_event_channel(void);
void vm_rdma_destroy_event_channel(struct rdma_event_channel *ch);
int vm_rdma_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **id, void *context,
                      enum rdma_port_space ps);
int vm_rdma_destroy_id(struct rdma_cm_id *id);
int vm_rdma_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr);
int vm_rdma_listen(struct rdma_cm_id *id, int backlog);
int vm_rdma_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src, struct sockaddr *dst,
                         int timeout_ms);
int vm_rdma_resolve_route(struct rdma_cm_id *id, int timeout_ms);
int vm_rdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *attr);
void vm_rdma_destroy_qp(struct rdma_cm_id *id);
int vm_rdma_connect(struct rdma_cm_id *id, struct rdma_conn_param *param);
int vm_rdma_accept(struct rdma_cm_id *id, struct rdma_conn_param *param);
int vm_rdma_reject(struct rdma_cm_id *id, const void *pdata, uint8_t len);
int vm_rdma_disconnect(struct rdma_cm_id *id);
int vm_rdma_get_cm_event(struct rdma_event_channel *ch, struct rdma_cm_event **event);
int vm_rdma_ack_cm_event(struct rdma_cm_event *event);

/* verbs_model_cm.c, with vm.mu held: events, and the passive side of a connection */
void vm_cm_event(struct vm_cmid *id, struct vm_cmid *listen, enum rdma_cm_event_type type,
                 int status, const void *pdata, size_t pdlen, size_t padded,
                 const struct vm_pkt *req);
void vm_cm_request(struct vm_conn *c, const struct vm_pkt *req, const void *pdata);
void vm_cm_packet(struct vm_conn *c, const struct vm_pkt *h, const void *payload);
void vm_cm_lost(struct vm_conn *c);

/* verbs_model_wire.c, with vm.mu held (vm_nic_start / vm_nic_stop without) */
int vm_nic_start(void);
void vm_nic_stop(void);
struct vm_conn *vm_conn_new(int fd, struct vm_cmid *id, struct vm_cmid *listen);
void vm_conn_free(struct vm_conn *c);
int vm_conn_ctl(struct vm_conn *c, const struct vm_pkt *h, const void *payload, size_t len,
                int close_after);

#endif
