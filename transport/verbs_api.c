/*
 * The call table over the installed libibverbs and librdmacm, and the choice
 * between it and the software model. The wrappers exist because the headers define
 * the data-path calls as static inline functions (they jump through the provider's
 * context ops), which a table cannot point to.
 */
#include <stdlib.h>

#include "verbs_api.h"

static const char *real_get_device_name(struct ibv_device *dev)
{
    return ibv_get_device_name(dev);
}

static int real_query_port(struct ibv_context *ctx, uint8_t port, struct ibv_port_attr *attr)
{
    return ibv_query_port(ctx, port, attr);
}

static int real_query_gid(struct ibv_context *ctx, uint8_t port, int index, union ibv_gid *gid)
{
    return ibv_query_gid(ctx, port, index, gid);
}

static int real_req_notify_cq(struct ibv_cq *cq, int solicited_only)
{
    return ibv_req_notify_cq(cq, solicited_only);
}

static int real_poll_cq(struct ibv_cq *cq, int num, struct ibv_wc *wc)
{
    return ibv_poll_cq(cq, num, wc);
}

static int real_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
    return ibv_post_send(qp, wr, bad);
}

static int real_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
    return ibv_post_recv(qp, wr, bad);
}

static struct ibv_mr *real_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access)
{
    return ibv_reg_mr(pd, addr, len, access);
}

const struct verbs_api verbs_api_real = {
    .name = "libibverbs",
    .get_device_list = ibv_get_device_list,
    .free_device_list = ibv_free_device_list,
    .get_device_name = real_get_device_name,
    .open_device = ibv_open_device,
    .close_device = ibv_close_device,
    .query_port = real_query_port,
    .query_gid = real_query_gid,
    .alloc_pd = ibv_alloc_pd,
    .dealloc_pd = ibv_dealloc_pd,
    .reg_mr = real_reg_mr,
    .dereg_mr = ibv_dereg_mr,
    .create_comp_channel = ibv_create_comp_channel,
    .destroy_comp_channel = ibv_destroy_comp_channel,
    .create_cq = ibv_create_cq,
    .destroy_cq = ibv_destroy_cq,
    .req_notify_cq = real_req_notify_cq,
    .get_cq_event = ibv_get_cq_event,
    .ack_cq_events = ibv_ack_cq_events,
    .poll_cq = real_poll_cq,
    .post_send = real_post_send,
    .post_recv = real_post_recv,
    .modify_qp = ibv_modify_qp,
    .query_qp = ibv_query_qp,
    .wc_status_str = ibv_wc_status_str,
    .create_event_channel = rdma_create_event_channel,
    .destroy_event_channel = rdma_destroy_event_channel,
    .create_id = rdma_create_id,
    .destroy_id = rdma_destroy_id,
    .bind_addr = rdma_bind_addr,
    .listen = rdma_listen,
    .resolve_addr = rdma_resolve_addr,
    .resolve_route = rdma_resolve_route,
    .create_qp = rdma_create_qp,
    .destroy_qp = rdma_destroy_qp,
    .connect = rdma_connect,
    .accept = rdma_accept,
    .reject = rdma_reject,
    .disconnect = rdma_disconnect,
    .get_cm_event = rdma_get_cm_event,
    .ack_cm_event = rdma_ack_cm_event,
    .event_str = rdma_event_str,
};

const struct verbs_api *verbs_api_select(char *why, size_t whylen)
{
    const char *dir = getenv("PRIDE_VERBS_MODEL");
    if (dir && *dir)
        return verbs_model_api(dir, why, whylen);
    return &verbs_api_real;
}
