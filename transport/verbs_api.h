/*
 * The one door between the verbs backend and the RDMA libraries: every libibverbs
 * and librdmacm call the backend makes goes through a struct verbs_api. Two tables
 * fill it: verbs_api_real (verbs_api.c) calls the installed libraries, and the
 * software model (verbs_model*.c) emulates them between processes on one machine,
 * so the same library binary runs on a real NIC or, with PRIDE_VERBS_MODEL=DIR, on
 * the model. Functions the headers declare static inline (ibv_poll_cq, ibv_post_send,
 * ibv_post_recv, ibv_req_notify_cq, ibv_query_port) are wrapped in real functions.
 *
 * Conventions follow the libraries: the ibv_* entries return 0 or an errno value
 * (get_cq_event and query_gid return -1), NULL on failure with errno set; the rdma_*
 * entries return 0 or -1 with errno set.
 */
#ifndef PRIDE_VERBS_API_H
#define PRIDE_VERBS_API_H

#include <stddef.h>
#include <stdint.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

struct verbs_api {
    const char *name; /* "libibverbs" or "model" */
    /* libibverbs */
    struct ibv_device **(*get_device_list)(int *num);
    void (*free_device_list)(struct ibv_device **list);
    const char *(*get_device_name)(struct ibv_device *dev);
    struct ibv_context *(*open_device)(struct ibv_device *dev);
    int (*close_device)(struct ibv_context *ctx);
    int (*query_port)(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *attr);
    int (*query_gid)(struct ibv_context *ctx, uint8_t port, int index, union ibv_gid *gid);
    struct ibv_pd *(*alloc_pd)(struct ibv_context *ctx);
    int (*dealloc_pd)(struct ibv_pd *pd);
    struct ibv_mr *(*reg_mr)(struct ibv_pd *pd, void *addr, size_t len, int access);
    int (*dereg_mr)(struct ibv_mr *mr);
    struct ibv_comp_channel *(*create_comp_channel)(struct ibv_context *ctx);
    int (*destroy_comp_channel)(struct ibv_comp_channel *ch);
    struct ibv_cq *(*create_cq)(struct ibv_context *ctx, int cqe, void *cq_context,
                                struct ibv_comp_channel *ch, int comp_vector);
    int (*destroy_cq)(struct ibv_cq *cq);
    int (*req_notify_cq)(struct ibv_cq *cq, int solicited_only);
    int (*get_cq_event)(struct ibv_comp_channel *ch, struct ibv_cq **cq, void **cq_context);
    void (*ack_cq_events)(struct ibv_cq *cq, unsigned int nevents);
    int (*poll_cq)(struct ibv_cq *cq, int num, struct ibv_wc *wc);
    int (*post_send)(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad);
    int (*post_recv)(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad);
    int (*modify_qp)(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask);
    int (*query_qp)(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask,
                    struct ibv_qp_init_attr *init);
    const char *(*wc_status_str)(enum ibv_wc_status status);
    /* librdmacm */
    struct rdma_event_channel *(*create_event_channel)(void);
    void (*destroy_event_channel)(struct rdma_event_channel *ch);
    int (*create_id)(struct rdma_event_channel *ch, struct rdma_cm_id **id, void *context,
                     enum rdma_port_space ps);
    int (*destroy_id)(struct rdma_cm_id *id);
    int (*bind_addr)(struct rdma_cm_id *id, struct sockaddr *addr);
    int (*listen)(struct rdma_cm_id *id, int backlog);
    int (*resolve_addr)(struct rdma_cm_id *id, struct sockaddr *src, struct sockaddr *dst,
                        int timeout_ms);
    int (*resolve_route)(struct rdma_cm_id *id, int timeout_ms);
    int (*create_qp)(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_qp_init_attr *attr);
    void (*destroy_qp)(struct rdma_cm_id *id);
    int (*connect)(struct rdma_cm_id *id, struct rdma_conn_param *param);
    int (*accept)(struct rdma_cm_id *id, struct rdma_conn_param *param);
    int (*reject)(struct rdma_cm_id *id, const void *private_data, uint8_t len);
    int (*disconnect)(struct rdma_cm_id *id);
    int (*get_cm_event)(struct rdma_event_channel *ch, struct rdma_cm_event **event);
    int (*ack_cm_event)(struct rdma_cm_event *event);
    const char *(*event_str)(enum rdma_cm_event_type event);
};

/* The installed libibverbs and librdmacm. */
extern const struct verbs_api verbs_api_real;

/* The table to use: the model on fabric directory $PRIDE_VERBS_MODEL when that is
   set, else the real libraries. NULL, with a sentence in why, if the model cannot
   start. */
const struct verbs_api *verbs_api_select(char *why, size_t whylen);

/* The software model on fabric directory dir (created if missing). Every process
   that names the same directory sees the same emulated fabric. NULL, with a sentence
   in why, when dir is unusable or another directory is already in use. */
const struct verbs_api *verbs_model_api(const char *dir, char *why, size_t whylen);

/* Faults the model can be told to inject on one of its queue pairs (tests). */
enum verbs_model_fault {
    /* Move the QP to the error state once arg bytes of incoming data were placed. */
    VERBS_FAULT_QP_ERROR_AFTER = 1,
    /* Check the next incoming RDMA write against a wrong rkey (arg unused). */
    VERBS_FAULT_BAD_RKEY = 2,
};

/* Returns 0, or EINVAL when qp is not a live model QP. */
int verbs_model_inject(struct ibv_qp *qp, enum verbs_model_fault fault, uint64_t arg);

#endif
