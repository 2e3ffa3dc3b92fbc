/*
 * The software model of libibverbs + librdmacm on its own, in one process (both ends
 * of each connection talk through the model's NIC thread and a Unix socket in a
 * temporary fabric directory): the device and port it presents, the RC state
 * machine, send/receive and RDMA write with immediate across packets, completion
 * channels, the error completions a NIC reports (remote access, invalid request,
 * local protection, RNR retries exhausted, flushes, retries exhausted), the
 * connection manager's events, and refusals of bad arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#ifdef PRIDE_HAVE_VERBS

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "verbs_api.h"

static const struct verbs_api *A;
static char fabric[64];

/* Both ends of one RC connection, each with its own PD, CQ and completion channel. */
struct end {
    struct rdma_event_channel *ev;
    struct rdma_cm_id *id;
    struct ibv_pd *pd;
    struct ibv_comp_channel *ch;
    struct ibv_cq *cq;
};

struct pair {
    struct end a, b;             /* a connects, b accepts */
    struct rdma_cm_id *listener; /* on b's event channel */
    uint16_t port;
};

static struct rdma_cm_event *cm_wait(struct rdma_event_channel *ev, enum rdma_cm_event_type want)
{
    struct pollfd p = {ev->fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1)
        fail_msg("no event within 5 s, wanted %s", A->event_str(want));
    struct rdma_cm_event *e = NULL;
    assert_int_equal(A->get_cm_event(ev, &e), 0);
    if (e->event != want)
        fail_msg("got %s, wanted %s", A->event_str(e->event), A->event_str(want));
    return e;
}

static void end_verbs(struct end *e, struct ibv_context *verbs)
{
    e->pd = A->alloc_pd(verbs);
    e->ch = A->create_comp_channel(verbs);
    assert_non_null(e->pd);
    assert_non_null(e->ch);
    e->cq = A->create_cq(verbs, 256, NULL, e->ch, 0);
    assert_non_null(e->cq);
}

static void end_qp(struct end *e)
{
    struct ibv_qp_init_attr qa = {.send_cq = e->cq, .recv_cq = e->cq, .qp_type = IBV_QPT_RC,
                                  .cap = {.max_send_wr = 32, .max_recv_wr = 32,
                                          .max_send_sge = 2, .max_recv_sge = 2}};
    assert_int_equal(A->create_qp(e->id, e->pd, &qa), 0);
}

static void sin_of(struct sockaddr_in *s, uint32_t ip, uint16_t port)
{
    memset(s, 0, sizeof *s);
    s->sin_family = AF_INET;
    s->sin_addr.s_addr = htonl(ip);
    s->sin_port = htons(port);
}

static void listen_on(struct pair *p)
{
    p->b.ev = A->create_event_channel();
    assert_non_null(p->b.ev);
    assert_int_equal(A->create_id(p->b.ev, &p->listener, NULL, RDMA_PS_TCP), 0);
    struct sockaddr_in s;
    sin_of(&s, 0x7f000001u, 0);
    assert_int_equal(A->bind_addr(p->listener, (struct sockaddr *)&s), 0);
    assert_int_equal(A->listen(p->listener, 8), 0);
    p->port = ntohs(p->listener->route.addr.src_sin.sin_port);
    assert_true(p->port != 0);
    end_verbs(&p->b, p->listener->verbs);
}

/* a: resolve, create its QP, connect; stops before the passive side answers. */
static void start_connect(struct pair *p, uint8_t rnr_retry, const void *pdata, uint8_t pdlen)
{
    p->a.ev = A->create_event_channel();
    assert_int_equal(A->create_id(p->a.ev, &p->a.id, NULL, RDMA_PS_TCP), 0);
    struct sockaddr_in dst;
    sin_of(&dst, 0x7f000001u, p->port);
    assert_int_equal(A->resolve_addr(p->a.id, NULL, (struct sockaddr *)&dst, 1000), 0);
    A->ack_cm_event(cm_wait(p->a.ev, RDMA_CM_EVENT_ADDR_RESOLVED));
    assert_int_equal(A->resolve_route(p->a.id, 1000), 0);
    A->ack_cm_event(cm_wait(p->a.ev, RDMA_CM_EVENT_ROUTE_RESOLVED));
    end_verbs(&p->a, p->a.id->verbs);
    end_qp(&p->a);
    struct rdma_conn_param cp = {.private_data = pdata, .private_data_len = pdlen,
                                 .retry_count = 7, .rnr_retry_count = rnr_retry};
    assert_int_equal(A->connect(p->a.id, &cp), 0);
}

static void connect_pair(struct pair *p, uint8_t rnr_retry)
{
    memset(p, 0, sizeof *p);
    listen_on(p);
    const char hello[] = "hello";
    start_connect(p, rnr_retry, hello, sizeof hello);
    struct rdma_cm_event *e = cm_wait(p->b.ev, RDMA_CM_EVENT_CONNECT_REQUEST);
    assert_ptr_equal(e->listen_id, p->listener);
    assert_int_equal(e->param.conn.private_data_len, 56); /* padded like an IB CM REQ */
    assert_string_equal(e->param.conn.private_data, "hello");
    p->b.id = e->id;
    A->ack_cm_event(e);
    end_qp(&p->b);
    struct rdma_conn_param cp = {.private_data = "ok", .private_data_len = 3,
                                 .rnr_retry_count = rnr_retry};
    assert_int_equal(A->accept(p->b.id, &cp), 0);
    e = cm_wait(p->a.ev, RDMA_CM_EVENT_ESTABLISHED);
    assert_string_equal(e->param.conn.private_data, "ok");
    A->ack_cm_event(e);
    A->ack_cm_event(cm_wait(p->b.ev, RDMA_CM_EVENT_ESTABLISHED));
}

static void end_free(struct end *e)
{
    if (e->id) {
        A->destroy_qp(e->id);
        assert_int_equal(A->destroy_id(e->id), 0);
    }
    if (e->cq)
        assert_int_equal(A->destroy_cq(e->cq), 0);
    if (e->ch)
        assert_int_equal(A->destroy_comp_channel(e->ch), 0);
    if (e->pd)
        assert_int_equal(A->dealloc_pd(e->pd), 0);
}

static void pair_free(struct pair *p)
{
    end_free(&p->a);
    end_free(&p->b);
    if (p->listener)
        assert_int_equal(A->destroy_id(p->listener), 0);
    if (p->a.ev)
        A->destroy_event_channel(p->a.ev);
    A->destroy_event_channel(p->b.ev);
}

/* Next completion on e's CQ, sleeping on the completion channel when it is empty. */
static struct ibv_wc wc_wait(struct end *e)
{
    struct ibv_wc wc;
    for (;;) {
        int n = A->poll_cq(e->cq, 1, &wc);
        assert_true(n >= 0);
        if (n == 1)
            return wc;
        assert_int_equal(A->req_notify_cq(e->cq, 0), 0);
        n = A->poll_cq(e->cq, 1, &wc);
        if (n == 1)
            return wc;
        struct pollfd pf = {e->ch->fd, POLLIN, 0};
        assert_int_equal(poll(&pf, 1, 5000), 1);
        struct ibv_cq *cq;
        void *cctx;
        assert_int_equal(A->get_cq_event(e->ch, &cq, &cctx), 0);
        assert_ptr_equal(cq, e->cq);
        A->ack_cq_events(cq, 1);
    }
}

static void post_recv(struct end *e, struct ibv_mr *mr, void *buf, uint32_t len, uint64_t id)
{
    struct ibv_sge sge = {(uintptr_t)buf, len, mr->lkey};
    struct ibv_recv_wr wr = {.wr_id = id, .sg_list = &sge, .num_sge = 1}, *bad;
    assert_int_equal(A->post_recv(e->id->qp, &wr, &bad), 0);
}

static int post_send(struct end *e, enum ibv_wr_opcode op, struct ibv_mr *mr, void *buf,
                     uint32_t len, uint64_t raddr, uint32_t rkey, uint32_t imm)
{
    struct ibv_sge sge = {(uintptr_t)buf, len, mr ? mr->lkey : 0};
    struct ibv_send_wr wr = {.wr_id = 99, .sg_list = &sge, .num_sge = 1, .opcode = op,
                             .send_flags = IBV_SEND_SIGNALED, .imm_data = htonl(imm)};
    wr.wr.rdma.remote_addr = raddr;
    wr.wr.rdma.rkey = rkey;
    struct ibv_send_wr *bad;
    return A->post_send(e->id->qp, &wr, &bad);
}

static enum ibv_qp_state qp_state(struct ibv_qp *qp)
{
    struct ibv_qp_attr a;
    struct ibv_qp_init_attr ia;
    assert_int_equal(A->query_qp(qp, &a, IBV_QP_STATE, &ia), 0);
    return a.qp_state;
}

static void test_device(void **state)
{
    (void)state;
    int n = 0;
    struct ibv_device **list = A->get_device_list(&n);
    assert_non_null(list);
    assert_int_equal(n, 1);
    assert_string_equal(A->get_device_name(list[0]), "model0");
    struct ibv_context *c = A->open_device(list[0]);
    assert_non_null(c);
    struct ibv_port_attr pa;
    assert_int_equal(A->query_port(c, 1, &pa), 0);
    assert_int_equal(pa.state, IBV_PORT_ACTIVE);
    assert_int_equal(pa.link_layer, IBV_LINK_LAYER_ETHERNET);
    assert_int_equal(A->query_port(c, 2, &pa), EINVAL);
    union ibv_gid g;
    assert_int_equal(A->query_gid(c, 1, 3, &g), 0);
    static const uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
    assert_memory_equal(g.raw, v4, 16);
    assert_int_equal(A->query_gid(c, 1, 0, &g), 0);
    assert_int_equal(g.raw[0], 0xfe);
    assert_int_equal(A->query_gid(c, 1, 4, &g), -1);
    assert_int_equal(A->close_device(c), 0);
    A->free_device_list(list);
}

/* RESET -> INIT -> RTR -> RTS, each step with its attributes; everything else refused. */
static void test_qp_state_machine(void **state)
{
    (void)state;
    struct pair p;
    memset(&p, 0, sizeof p);
    listen_on(&p);
    p.a.ev = A->create_event_channel();
    assert_int_equal(A->create_id(p.a.ev, &p.a.id, NULL, RDMA_PS_TCP), 0);
    struct sockaddr_in dst;
    sin_of(&dst, 0x7f000001u, p.port);
    assert_int_equal(A->resolve_addr(p.a.id, NULL, (struct sockaddr *)&dst, 1000), 0);
    A->ack_cm_event(cm_wait(p.a.ev, RDMA_CM_EVENT_ADDR_RESOLVED));
    end_verbs(&p.a, p.a.id->verbs);
    end_qp(&p.a);
    struct ibv_qp *qp = p.a.id->qp;
    assert_int_equal(qp_state(qp), IBV_QPS_INIT); /* rdma_create_qp leaves it in INIT */

    char buf[64];
    struct ibv_mr *mr = A->reg_mr(p.a.pd, buf, sizeof buf, IBV_ACCESS_LOCAL_WRITE);
    assert_non_null(mr);
    assert_int_equal(post_send(&p.a, IBV_WR_SEND, mr, buf, 8, 0, 0, 0), EINVAL); /* not RTS */
    post_recv(&p.a, mr, buf, sizeof buf, 1); /* receives may be posted from INIT on */

    struct ibv_qp_attr a = {.qp_state = IBV_QPS_RTS};
    assert_int_equal(A->modify_qp(qp, &a, IBV_QP_STATE), EINVAL); /* INIT -> RTS skips RTR */
    a = (struct ibv_qp_attr){.qp_state = IBV_QPS_RTR, .path_mtu = IBV_MTU_1024,
                             .ah_attr = {.port_num = 1}, .min_rnr_timer = 12};
    const int rtr = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                    IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
    assert_int_equal(A->modify_qp(qp, &a, rtr & ~IBV_QP_DEST_QPN), EINVAL);
    a.ah_attr.port_num = 2;
    assert_int_equal(A->modify_qp(qp, &a, rtr), EINVAL);
    a.ah_attr.port_num = 1;
    assert_int_equal(A->modify_qp(qp, &a, rtr), 0);
    assert_int_equal(qp_state(qp), IBV_QPS_RTR);
    assert_int_equal(post_send(&p.a, IBV_WR_SEND, mr, buf, 8, 0, 0, 0), EINVAL); /* RTR */
    a = (struct ibv_qp_attr){.qp_state = IBV_QPS_RTS, .timeout = 14, .retry_cnt = 9};
    const int rts = IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                    IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
    assert_int_equal(A->modify_qp(qp, &a, rts), EINVAL); /* retry_cnt > 7 */
    a.retry_cnt = 7;
    assert_int_equal(A->modify_qp(qp, &a, rts), 0);
    assert_int_equal(qp_state(qp), IBV_QPS_RTS);
    a = (struct ibv_qp_attr){.qp_state = IBV_QPS_INIT};
    assert_int_equal(A->modify_qp(qp, &a, IBV_QP_STATE), EINVAL); /* RTS -> INIT */

    /* ERR flushes what is posted, and what is posted afterwards */
    a = (struct ibv_qp_attr){.qp_state = IBV_QPS_ERR};
    assert_int_equal(A->modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT), EINVAL);
    assert_int_equal(A->modify_qp(qp, &a, IBV_QP_STATE), 0);
    struct ibv_wc wc = wc_wait(&p.a);
    assert_int_equal(wc.status, IBV_WC_WR_FLUSH_ERR);
    assert_int_equal(wc.wr_id, 1);
    assert_int_equal(post_send(&p.a, IBV_WR_SEND, mr, buf, 8, 0, 0, 0), 0);
    wc = wc_wait(&p.a);
    assert_int_equal(wc.status, IBV_WC_WR_FLUSH_ERR);
    assert_int_equal(wc.wr_id, 99);

    a = (struct ibv_qp_attr){.qp_state = IBV_QPS_RESET};
    assert_int_equal(A->modify_qp(qp, &a, IBV_QP_STATE), 0);
    struct ibv_sge sge = {(uintptr_t)buf, 8, mr->lkey};
    struct ibv_recv_wr rw = {.wr_id = 2, .sg_list = &sge, .num_sge = 1}, *bad;
    assert_int_equal(A->post_recv(qp, &rw, &bad), EINVAL); /* RESET */
    a = (struct ibv_qp_attr){.qp_state = IBV_QPS_INIT, .port_num = 1};
    assert_int_equal(A->modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PORT), EINVAL);
    assert_int_equal(A->modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PORT | IBV_QP_PKEY_INDEX |
                                              IBV_QP_ACCESS_FLAGS),
                     0);
    assert_int_equal(A->dereg_mr(mr), 0);
    pair_free(&p);
}

/* Send/receive over many packets, and RDMA write with immediate. */
static void test_send_and_write(void **state)
{
    (void)state;
    struct pair p;
    connect_pair(&p, 7);
    enum { LEN = 300000, BIG = 3 << 20 };
    uint8_t *src = malloc(BIG), *dst = calloc(1, BIG);
    assert_true(src && dst);
    for (size_t i = 0; i < BIG; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    struct ibv_mr *smr = A->reg_mr(p.a.pd, src, BIG, 0);
    struct ibv_mr *dmr =
        A->reg_mr(p.b.pd, dst, BIG, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    assert_true(smr && dmr);

    /* the receive is posted after the send: the responder says RNR, the requester retries */
    assert_int_equal(post_send(&p.a, IBV_WR_SEND, smr, src, LEN, 0, 0, 0), 0);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    post_recv(&p.b, dmr, dst, LEN + 5, 7);
    struct ibv_wc wc = wc_wait(&p.b);
    assert_int_equal(wc.status, IBV_WC_SUCCESS);
    assert_int_equal(wc.opcode, IBV_WC_RECV);
    assert_int_equal(wc.byte_len, LEN);
    assert_int_equal(wc.wr_id, 7);
    assert_memory_equal(src, dst, LEN);
    wc = wc_wait(&p.a);
    assert_int_equal(wc.status, IBV_WC_SUCCESS);
    assert_int_equal(wc.opcode, IBV_WC_SEND);

    memset(dst, 0, BIG);
    post_recv(&p.b, dmr, dst, 0, 8); /* the immediate needs a receive WQE, not its buffer */
    assert_int_equal(post_send(&p.a, IBV_WR_RDMA_WRITE_WITH_IMM, smr, src, BIG,
                               (uintptr_t)dst, dmr->rkey, 0xabcd),
                     0);
    wc = wc_wait(&p.b);
    assert_int_equal(wc.status, IBV_WC_SUCCESS);
    assert_int_equal(wc.opcode, IBV_WC_RECV_RDMA_WITH_IMM);
    assert_true(wc.wc_flags & IBV_WC_WITH_IMM);
    assert_int_equal(ntohl(wc.imm_data), 0xabcd);
    assert_int_equal(wc.byte_len, BIG);
    assert_memory_equal(src, dst, BIG);
    wc = wc_wait(&p.a);
    assert_int_equal(wc.status, IBV_WC_SUCCESS);
    assert_int_equal(wc.opcode, IBV_WC_RDMA_WRITE);

    /* a zero-length send still consumes a receive */
    post_recv(&p.b, dmr, dst, 16, 9);
    assert_int_equal(post_send(&p.a, IBV_WR_SEND, smr, src, 0, 0, 0, 0), 0);
    wc = wc_wait(&p.b);
    assert_int_equal(wc.status, IBV_WC_SUCCESS);
    assert_int_equal(wc.byte_len, 0);
    assert_int_equal(wc_wait(&p.a).status, IBV_WC_SUCCESS);

    A->dereg_mr(smr);
    A->dereg_mr(dmr);
    free(src);
    free(dst);
    pair_free(&p);
}

enum fault { BAD_RKEY, OUT_OF_BOUNDS, NO_REMOTE_WRITE, TOO_LONG, BAD_LKEY, NO_RECV, QP_DIES,
             TOO_BIG };

/* Each fault on a fresh connection: what the requester and the responder see. */
static void one_fault(enum fault f)
{
    struct pair p;
    connect_pair(&p, f == NO_RECV ? 0 : 7);
    /* TOO_BIG: more than the port's max_msg_sz (8 MiB on the model) */
    uint32_t LEN = f == TOO_BIG ? 9u << 20 : 200000;
    uint8_t *src = calloc(1, LEN), *dst = calloc(1, LEN);
    assert_true(src && dst);
    struct ibv_mr *smr = A->reg_mr(p.a.pd, src, LEN, 0);
    int access = IBV_ACCESS_LOCAL_WRITE | (f == NO_REMOTE_WRITE ? 0 : IBV_ACCESS_REMOTE_WRITE);
    struct ibv_mr *dmr = A->reg_mr(p.b.pd, dst, LEN, access);
    assert_true(smr && dmr);
    if (f != NO_RECV)
        post_recv(&p.b, dmr, dst, f == TOO_LONG ? 100 : LEN, 5);
    enum ibv_wc_status want_a = IBV_WC_REM_ACCESS_ERR, want_b = IBV_WC_WR_FLUSH_ERR;
    uint32_t rkey = dmr->rkey, len = LEN;
    uint64_t raddr = (uintptr_t)dst;
    enum ibv_wr_opcode op = IBV_WR_RDMA_WRITE_WITH_IMM;
    switch (f) {
    case BAD_RKEY:
        rkey ^= 0x5500;
        break;
    case OUT_OF_BOUNDS:
        raddr += 8;
        break;
    case NO_REMOTE_WRITE:
        break;
    case TOO_LONG:
        op = IBV_WR_SEND;
        want_a = IBV_WC_REM_INV_REQ_ERR;
        want_b = IBV_WC_LOC_LEN_ERR;
        break;
    case BAD_LKEY:
        op = IBV_WR_SEND;
        want_a = IBV_WC_LOC_PROT_ERR;
        break;
    case NO_RECV:
        op = IBV_WR_SEND;
        want_a = IBV_WC_RNR_RETRY_EXC_ERR;
        break;
    case TOO_BIG:
        want_a = IBV_WC_LOC_LEN_ERR;
        break;
    case QP_DIES:
        assert_int_equal(verbs_model_inject(p.b.id->qp, VERBS_FAULT_QP_ERROR_AFTER, 70000), 0);
        want_a = IBV_WC_RETRY_EXC_ERR;
        break;
    }
    /* BAD_LKEY posts key 0, which no region has */
    assert_int_equal(post_send(&p.a, op, f == BAD_LKEY ? NULL : smr, src, len, raddr, rkey, 1), 0);
    struct ibv_wc wc = wc_wait(&p.a);
    if (wc.status != want_a)
        fail_msg("fault %d: requester got %s, wanted %s", f, A->wc_status_str(wc.status),
                 A->wc_status_str(want_a));
    assert_int_equal(qp_state(p.a.id->qp), IBV_QPS_ERR);
    if (f != BAD_LKEY && f != NO_RECV && f != TOO_BIG) {
        wc = wc_wait(&p.b);
        if (wc.status != want_b)
            fail_msg("fault %d: responder got %s, wanted %s", f, A->wc_status_str(wc.status),
                     A->wc_status_str(want_b));
        assert_int_equal(qp_state(p.b.id->qp), IBV_QPS_ERR);
    }
    A->dereg_mr(smr);
    A->dereg_mr(dmr);
    free(src);
    free(dst);
    pair_free(&p);
}

static void test_faults(void **state)
{
    (void)state;
    for (int f = BAD_RKEY; f <= TOO_BIG; f++)
        one_fault((enum fault)f);
}

static void test_cm_events(void **state)
{
    (void)state;
    /* nobody listens on the port: REJECTED with the IB CM's "invalid service ID" */
    struct pair p;
    memset(&p, 0, sizeof p);
    listen_on(&p);
    uint16_t port = p.port;
    assert_int_equal(A->destroy_id(p.listener), 0);
    p.listener = NULL;
    p.port = port;
    start_connect(&p, 7, NULL, 0);
    struct rdma_cm_event *e = cm_wait(p.a.ev, RDMA_CM_EVENT_REJECTED);
    assert_int_equal(e->status, 8);
    A->ack_cm_event(e);
    pair_free(&p);

    /* the passive side rejects, with private data */
    memset(&p, 0, sizeof p);
    listen_on(&p);
    start_connect(&p, 7, "x", 2);
    e = cm_wait(p.b.ev, RDMA_CM_EVENT_CONNECT_REQUEST);
    struct rdma_cm_id *child = e->id;
    A->ack_cm_event(e);
    assert_int_equal(A->reject(child, "no", 3), 0);
    e = cm_wait(p.a.ev, RDMA_CM_EVENT_REJECTED);
    assert_int_equal(e->status, 28);
    assert_string_equal(e->param.conn.private_data, "no");
    A->ack_cm_event(e);
    assert_int_equal(A->destroy_id(child), 0);
    pair_free(&p);

    /* an address that is not on the fabric */
    struct rdma_event_channel *ev = A->create_event_channel();
    struct rdma_cm_id *id;
    assert_int_equal(A->create_id(ev, &id, NULL, RDMA_PS_TCP), 0);
    struct sockaddr_in s;
    sin_of(&s, 0x0a010203u, 5000);
    assert_int_equal(A->bind_addr(id, (struct sockaddr *)&s), -1);
    assert_int_equal(errno, EADDRNOTAVAIL);
    assert_int_equal(A->resolve_addr(id, NULL, (struct sockaddr *)&s, 1000), 0);
    A->ack_cm_event(cm_wait(ev, RDMA_CM_EVENT_ADDR_ERROR));
    assert_int_equal(A->destroy_id(id), 0);
    A->destroy_event_channel(ev);

    /* disconnect: both sides see DISCONNECTED, receives left are flushed */
    connect_pair(&p, 7);
    char buf[32];
    struct ibv_mr *mr = A->reg_mr(p.b.pd, buf, sizeof buf, IBV_ACCESS_LOCAL_WRITE);
    post_recv(&p.b, mr, buf, sizeof buf, 3);
    assert_int_equal(A->disconnect(p.a.id), 0);
    A->ack_cm_event(cm_wait(p.b.ev, RDMA_CM_EVENT_DISCONNECTED));
    A->ack_cm_event(cm_wait(p.a.ev, RDMA_CM_EVENT_DISCONNECTED));
    struct ibv_wc wc = wc_wait(&p.b);
    assert_int_equal(wc.status, IBV_WC_WR_FLUSH_ERR);
    assert_int_equal(wc.wr_id, 3);
    A->dereg_mr(mr);
    pair_free(&p);

    /* the peer's id goes away without a word: DISCONNECTED all the same */
    connect_pair(&p, 7);
    A->destroy_qp(p.b.id);
    assert_int_equal(A->destroy_id(p.b.id), 0);
    p.b.id = NULL;
    A->ack_cm_event(cm_wait(p.a.ev, RDMA_CM_EVENT_DISCONNECTED));
    assert_int_equal(qp_state(p.a.id->qp), IBV_QPS_ERR);
    pair_free(&p);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct pair p;
    memset(&p, 0, sizeof p);
    listen_on(&p);
    char buf[64];
    errno = 0;
    assert_null(A->reg_mr(p.b.pd, buf, 0, 0));
    assert_int_equal(errno, EINVAL);
    assert_null(A->reg_mr(p.b.pd, buf, sizeof buf, IBV_ACCESS_REMOTE_WRITE));
    assert_int_equal(errno, EINVAL);
    long pg = sysconf(_SC_PAGESIZE);
    void *gone = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(gone != MAP_FAILED);
    munmap(gone, (size_t)pg);
    assert_null(A->reg_mr(p.b.pd, gone, 16, IBV_ACCESS_LOCAL_WRITE));
    assert_int_equal(errno, EFAULT);
    struct ibv_mr *mr = A->reg_mr(p.b.pd, buf, sizeof buf, 0);
    assert_non_null(mr);
    assert_int_equal(A->dealloc_pd(p.b.pd), EBUSY); /* a region still lives on it */
    assert_int_equal(A->dereg_mr(mr), 0);
    assert_null(A->create_cq(p.listener->verbs, 0, NULL, NULL, 0));
    assert_int_equal(errno, EINVAL);
    struct ibv_qp_init_attr qa = {.send_cq = p.b.cq, .recv_cq = p.b.cq, .qp_type = IBV_QPT_UD,
                                  .cap = {.max_send_wr = 1, .max_recv_wr = 1}};
    assert_int_equal(A->create_qp(p.listener, p.b.pd, &qa), -1); /* RC only */
    qa.qp_type = IBV_QPT_RC;
    qa.cap.max_send_wr = 0;
    assert_int_equal(A->create_qp(p.listener, p.b.pd, &qa), -1);
    assert_int_equal(A->resolve_route(p.listener, 1000), -1); /* no address resolved */
    assert_int_equal(A->accept(p.listener, NULL), -1);         /* not a connection request */
    assert_int_equal(A->disconnect(p.listener), -1);
    pair_free(&p);

    char why[256];
    char longdir[200];
    memset(longdir, 'x', sizeof longdir - 1);
    longdir[0] = '/';
    longdir[sizeof longdir - 1] = 0;
    assert_null(verbs_model_api(longdir, why, sizeof why));
    assert_non_null(strstr(why, "too long"));
}

static int setup(void **state)
{
    (void)state;
    snprintf(fabric, sizeof fabric, "/tmp/pride-vm-XXXXXX");
    if (!mkdtemp(fabric))
        return -1;
    char why[256];
    A = verbs_model_api(fabric, why, sizeof why);
    return A ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(fabric);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device),          cmocka_unit_test(test_qp_state_machine),
        cmocka_unit_test(test_send_and_write), cmocka_unit_test(test_faults),
        cmocka_unit_test(test_cm_events),       cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

#else

static void test_not_built(void **state)
{
    (void)state;
    skip(); /* libibverbs / librdmacm were not found: the verbs backend is not built */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_not_built)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
