/*
 * ofi start-up: choose a libfabric provider that offers reliable datagram (RDM)
 * endpoints with tagged messages and receives directed at one source, open fabric,
 * domain, completion queue, address vector and endpoint, and exchange endpoint names
 * through the store, so that rank j is entry j of the address vector. Connections,
 * where the provider has any (tcp;ofi_rxm), are made by libfabric on first use.
 *
 * Provider: $PRIDE_OFI_PROVIDER names one ("tcp;ofi_rxm", "shm", "verbs;ofi_rxm",
 * "efa"); without it the first one fi_getinfo offers, passing over the sockets and
 * udp test providers when anything else is there. Every rank must end up on the same
 * provider; a rank that did not is named at start-up. With PRIDE_IFNAME, providers
 * with socket addresses use the domain (interface) of that name.
 *
 * Liveness: libfabric says little about a peer process that died (shm nothing at
 * all), so each rank publishes its pid with its address, and peers on the same host
 * and pid namespace watch each other through a pidfd, which becomes readable when
 * the process ends. Remote peers are covered by the provider's errors and the
 * deadline.
 *
 * Doorbells: a provider whose completion queue has no wait fd (shm) cannot wake a
 * rank that sleeps. Each rank publishes the number of its wake-up eventfd, and a peer
 * on the same host takes a copy of it with pidfd_getfd (the permission shm's
 * process_vm_readv needs too), to ring it when it sends or finishes a transfer the
 * sleeper may wait for. Without it the sleeper's backoff still finds the work.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <rdma/fi_cm.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include "ofi.h"

#define OFI_REC_MAGIC 0x4f445250u /* "PRDO" */
#define OFI_ADDR_MAX 256

/* What each rank publishes. */
struct ofi_addr_rec {
    uint32_t magic;
    uint32_t version;
    char prov[64];
    char host[48];    /* boot id: which kernel */
    uint64_t pidns;   /* pid namespace inode */
    int32_t pid;
    int32_t bellfd;   /* its wake-up eventfd, in its own fd table */
    uint32_t addr_format;
    uint32_t addrlen;
    uint8_t addr[OFI_ADDR_MAX];
};

int ofi_setup_error(pride_context_t *ctx, const char *call, int ret)
{
    return pride_error(ctx, PRIDE_ERR_TRANSPORT, "rank %d: ofi start-up: %s: %s", ctx->rank, call,
                       fi_strerror(ret < 0 ? -ret : ret));
}

static int prov_is_fallback(const char *name)
{
    return !strncmp(name, "sockets", 7) || !strncmp(name, "udp", 3);
}

static int addr_is_socket(uint32_t fmt)
{
    return fmt == FI_SOCKADDR || fmt == FI_SOCKADDR_IN || fmt == FI_SOCKADDR_IN6;
}

/* Pick one entry of fi_getinfo's list; NULL with a sentence in why. */
static struct fi_info *ofi_choose(struct fi_info *list, const char *want, const char *ifname,
                                  char *why, size_t wl)
{
    struct fi_info *pick = NULL;
    for (struct fi_info *i = list; i && !pick; i = i->next)
        if (want || !prov_is_fallback(i->fabric_attr->prov_name))
            pick = i;
    if (!pick)
        pick = list;
    if (!ifname[0] || !addr_is_socket(pick->addr_format))
        return pick;
    char domains[256] = "";
    size_t dl = 0;
    for (struct fi_info *i = list; i; i = i->next) {
        if (strcmp(i->fabric_attr->prov_name, pick->fabric_attr->prov_name))
            continue;
        if (!strcmp(i->domain_attr->name, ifname))
            return i;
        if (!strstr(domains, i->domain_attr->name) && dl + strlen(i->domain_attr->name) + 3 <
                                                          sizeof domains)
            dl += (size_t)snprintf(domains + dl, sizeof domains - dl, "%s%s", dl ? ", " : "",
                                   i->domain_attr->name);
    }
    snprintf(why, wl, "PRIDE_IFNAME=%s: provider %s has no domain of that name (it has: %s)",
             ifname, pick->fabric_attr->prov_name, domains);
    return NULL;
}

static int ofi_getinfo(struct pride_tp *tp, const char *want)
{
    pride_context_t *ctx = tp->ctx;
    struct fi_info *hints = fi_allocinfo(), *list = NULL;
    int st = PRIDE_OK;
    if (!hints)
        return pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for fi_info hints");
    hints->ep_attr->type = FI_EP_RDM;
    /* directed receives: messages from two peers with the same (seq, tag) must not
       meet each other's receive */
    hints->caps = FI_TAGGED | FI_DIRECTED_RECV;
    hints->mode = FI_CONTEXT | FI_CONTEXT2;
    hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
    hints->domain_attr->threading = FI_THREAD_DOMAIN; /* every call is under tp->mu */
    hints->domain_attr->resource_mgmt = FI_RM_ENABLED;
    hints->tx_attr->msg_order = FI_ORDER_SAS;
    hints->rx_attr->msg_order = FI_ORDER_SAS;
    hints->tx_attr->iov_limit = 2; /* header, payload */
    hints->rx_attr->iov_limit = 3; /* header, payload, room for a longer eager one */
    if (want) {
        hints->fabric_attr->prov_name = strdup(want);
        if (!hints->fabric_attr->prov_name) {
            st = pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for fi_info hints");
            goto out;
        }
    }
    int ret = fi_getinfo(FI_VERSION(1, 10), NULL, NULL, 0, hints, &list);
    if (ret || !list) {
        if (want)
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT,
                             "rank %d: PRIDE_OFI_PROVIDER=%s: libfabric %u.%u offers no such "
                             "provider with reliable datagram endpoints and tagged messages "
                             "here (fi_getinfo: %s; `fi_info -l` lists the providers)",
                             tp->rank, want, FI_MAJOR(fi_version()), FI_MINOR(fi_version()),
                             fi_strerror(-ret));
        else
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT,
                             "rank %d: libfabric offers no provider with reliable datagram "
                             "endpoints and tagged messages here (fi_getinfo: %s)",
                             tp->rank, fi_strerror(-ret));
        goto out;
    }
    char why[400];
    struct fi_info *pick = ofi_choose(list, want, ctx->ifname, why, sizeof why);
    if (!pick) {
        st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "rank %d: %s", tp->rank, why);
        goto out;
    }
    tp->info = fi_dupinfo(pick);
    if (!tp->info) {
        st = pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for fi_info");
        goto out;
    }
    snprintf(tp->prov, sizeof tp->prov, "%s", pick->fabric_attr->prov_name);
out:
    fi_freeinfo(list);
    fi_freeinfo(hints);
    return st;
}

/* Fabric, domain, CQ (with a wait fd where the provider has one), AV, endpoint. */
static int ofi_objects(struct pride_tp *tp)
{
    pride_context_t *ctx = tp->ctx;
    struct fi_info *info = tp->info;
    int ret = fi_fabric(info->fabric_attr, &tp->fabric, NULL);
    if (ret)
        return ofi_setup_error(ctx, "fi_fabric", ret);
    ret = fi_domain(tp->fabric, info, &tp->domain, NULL);
    if (ret)
        return ofi_setup_error(ctx, "fi_domain", ret);
    struct fi_cq_attr ca = {.format = FI_CQ_FORMAT_TAGGED, .wait_obj = FI_WAIT_FD, .size = 4096};
    ret = fi_cq_open(tp->domain, &ca, &tp->cq, NULL);
    if (ret) { /* no wait fd (shm): completions are polled with a sleeping backoff */
        ca.wait_obj = FI_WAIT_NONE;
        ret = fi_cq_open(tp->domain, &ca, &tp->cq, NULL);
        if (ret)
            return ofi_setup_error(ctx, "fi_cq_open", ret);
    } else {
        ret = fi_control(&tp->cq->fid, FI_GETWAIT, &tp->cq_fd);
        if (ret)
            return ofi_setup_error(ctx, "fi_control(FI_GETWAIT)", ret);
    }
    struct fi_av_attr aa = {.type = FI_AV_TABLE, .count = (size_t)tp->nranks};
    ret = fi_av_open(tp->domain, &aa, &tp->av, NULL);
    if (ret)
        return ofi_setup_error(ctx, "fi_av_open", ret);
    ret = fi_endpoint(tp->domain, info, &tp->ep, NULL);
    if (ret)
        return ofi_setup_error(ctx, "fi_endpoint", ret);
    ret = fi_ep_bind(tp->ep, &tp->cq->fid, FI_TRANSMIT | FI_RECV);
    if (ret)
        return ofi_setup_error(ctx, "fi_ep_bind(cq)", ret);
    ret = fi_ep_bind(tp->ep, &tp->av->fid, 0);
    if (ret)
        return ofi_setup_error(ctx, "fi_ep_bind(av)", ret);
    ret = fi_enable(tp->ep);
    if (ret)
        return ofi_setup_error(ctx, "fi_enable", ret);
    tp->mr_local = (info->domain_attr->mr_mode & FI_MR_LOCAL) != 0;
    tp->inject_size = info->tx_attr->inject_size;
    return PRIDE_OK;
}

static void host_identity(struct ofi_addr_rec *rec)
{
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, rec->host, sizeof rec->host - 1);
        (void)n;
        close(fd);
    }
    struct stat st;
    if (stat("/proc/self/ns/pid", &st) == 0)
        rec->pidns = (uint64_t)st.st_ino;
    rec->pid = (int32_t)getpid();
}

/* Watch a peer's process when it shares this kernel and pid namespace, and take a
   copy of its doorbell when the provider needs one. */
static void watch_peer(struct pride_tp *tp, struct ofi_peer *p, const struct ofi_addr_rec *mine,
                       const struct ofi_addr_rec *rec)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    if (!mine->host[0] || strcmp(mine->host, rec->host) || !mine->pidns ||
        mine->pidns != rec->pidns || rec->pid <= 0)
        return;
    p->pidfd = (int)syscall(SYS_pidfd_open, (pid_t)rec->pid, 0);
    if (p->pidfd < 0 && errno == ESRCH) /* gone already (it may have finished) */
        p->dead_ns = pride_now_ns();
    if (p->pidfd >= 0 && tp->cq_fd < 0 && rec->bellfd >= 0)
        p->bell = (int)syscall(SYS_pidfd_getfd, p->pidfd, rec->bellfd, 0);
#else
    (void)tp;
    (void)p;
    (void)mine;
    (void)rec;
#endif
}

static int ofi_exchange(struct pride_tp *tp)
{
    pride_context_t *ctx = tp->ctx;
    struct ofi_addr_rec mine, *all = NULL;
    int st = PRIDE_OK;
    memset(&mine, 0, sizeof mine);
    mine.magic = OFI_REC_MAGIC;
    mine.version = PRIDE_PROTO_VERSION;
    snprintf(mine.prov, sizeof mine.prov, "%s", tp->prov);
    host_identity(&mine);
    mine.bellfd = tp->wakefd;
    mine.addr_format = tp->info->addr_format;
    size_t alen = sizeof mine.addr;
    int ret = fi_getname(&tp->ep->fid, mine.addr, &alen);
    if (ret)
        return ofi_setup_error(ctx, "fi_getname", ret);
    mine.addrlen = (uint32_t)alen;

    all = calloc((size_t)tp->nranks, sizeof *all);
    if (!all)
        return pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for %d addresses", tp->nranks);
    if (tp->nranks == 1)
        all[0] = mine;
    else
        st = pride_bootstrap_allgather(ctx, "ofi-addr", &mine, all, sizeof mine);
    if (st)
        goto out;
    for (int j = 0; j < tp->nranks; j++) {
        struct ofi_addr_rec *r = &all[j];
        r->prov[sizeof r->prov - 1] = 0;
        r->host[sizeof r->host - 1] = 0;
        if (r->magic != OFI_REC_MAGIC || r->version != PRIDE_PROTO_VERSION ||
            r->addrlen > sizeof r->addr) {
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT,
                             "rank %d published an ofi address this build cannot read "
                             "(version %u)", j, (unsigned)r->version);
            goto out;
        }
        if (strcmp(r->prov, mine.prov) || r->addr_format != mine.addr_format) {
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT,
                             "rank %d chose ofi provider %s but rank %d chose %s (set "
                             "PRIDE_OFI_PROVIDER to the same provider on every rank)",
                             j, r->prov, tp->rank, mine.prov);
            goto out;
        }
    }
    for (int j = 0; j < tp->nranks; j++) {
        ret = fi_av_insert(tp->av, all[j].addr, 1, &tp->peers[j].addr, 0, NULL);
        if (ret != 1) {
            st = pride_error(ctx, PRIDE_ERR_TRANSPORT,
                             "rank %d: fi_av_insert of rank %d's %s address: %s", tp->rank, j,
                             tp->prov, ret < 0 ? fi_strerror(-ret) : "not inserted");
            goto out;
        }
        if (j != tp->rank)
            watch_peer(tp, &tp->peers[j], &mine, &all[j]);
    }
    tp->bells = tp->cq_fd < 0;
    for (int j = 0; j < tp->nranks; j++)
        if (j != tp->rank && tp->peers[j].bell < 0)
            tp->bells = 0;
out:
    free(all);
    return st;
}

void ofi_close(struct pride_tp *tp)
{
    if (!tp)
        return;
    if (tp->ep)
        fi_close(&tp->ep->fid);
    if (tp->av)
        fi_close(&tp->av->fid);
    if (tp->cq)
        fi_close(&tp->cq->fid);
    ofi_mr_release_all(tp);
    for (struct ofi_slab *s = tp->slabs, *n; s; s = n) {
        n = s->next;
        if (s->mr)
            fi_close(&s->mr->fid);
        free(s);
    }
    if (tp->domain)
        fi_close(&tp->domain->fid);
    if (tp->fabric)
        fi_close(&tp->fabric->fid);
    fi_freeinfo(tp->info);
    for (int j = 0; tp->peers && j < tp->nranks; j++) {
        if (tp->peers[j].pidfd >= 0)
            close(tp->peers[j].pidfd);
        if (tp->peers[j].bell >= 0)
            close(tp->peers[j].bell);
    }
    free(tp->peers);
    free(tp->pfds);
    free(tp->pwho);
    if (tp->wakefd >= 0)
        close(tp->wakefd);
    pthread_cond_destroy(&tp->cv);
    pthread_mutex_destroy(&tp->mu);
    free(tp);
}

int ofi_open(pride_context_t *ctx, struct pride_tp **out)
{
    struct pride_tp *tp = calloc(1, sizeof *tp);
    if (!tp)
        return pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for the ofi transport");
    tp->ctx = ctx;
    tp->rank = ctx->rank;
    tp->nranks = ctx->nranks;
    tp->cq_fd = tp->wakefd = -1;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&tp->cv, &ca);
    pthread_condattr_destroy(&ca);
    int st;
    tp->peers = calloc((size_t)tp->nranks, sizeof *tp->peers);
    tp->pfds = calloc((size_t)tp->nranks + 2, sizeof *tp->pfds);
    tp->pwho = calloc((size_t)tp->nranks + 2, sizeof *tp->pwho);
    if (!tp->peers || !tp->pfds || !tp->pwho) {
        st = pride_error(ctx, PRIDE_ERR_NOMEM, "no memory for %d peers", tp->nranks);
        goto fail;
    }
    for (int j = 0; j < tp->nranks; j++)
        tp->peers[j].pidfd = tp->peers[j].bell = -1;
    tp->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (tp->wakefd < 0) {
        st = pride_error(ctx, PRIDE_ERR_TRANSPORT, "eventfd: %s", strerror(errno));
        goto fail;
    }
    const char *want = getenv("PRIDE_OFI_PROVIDER");
    st = ofi_getinfo(tp, want && *want ? want : NULL);
    if (st)
        goto fail;
    st = ofi_objects(tp);
    if (st)
        goto fail;
    st = ofi_exchange(tp);
    if (st)
        goto fail;
    pthread_mutex_lock(&tp->mu);
    st = ofi_post_err_recv(tp);
    pthread_mutex_unlock(&tp->mu);
    if (st)
        goto fail;
    *out = tp;
    return PRIDE_OK;
fail:
    ofi_close(tp);
    return st;
}
