/*
 * Memory registration for providers that need a descriptor for every local buffer
 * (FI_MR_LOCAL in the mr_mode fi_getinfo returns: verbs, efa; tcp;ofi_rxm and shm do
 * not). A registration covers [lo, hi) and is shared by every operation in flight
 * whose buffer lies inside it, so the chunks of one collective on one buffer cost
 * one fi_mr_reg; buffers given to mem_reg stay registered until mem_dereg.
 *
 * The one idea: a registration the user does not keep alive is closed when its last
 * operation completes. Keeping it longer would hand out a descriptor for pages that
 * free() and malloc() may have replaced at the same address; the providers that need
 * registration keep their own cache, guarded by memory monitors, behind fi_mr_reg.
 */
#include <stdio.h>
#include <stdlib.h>

#include <rdma/fi_errno.h>

#include "ofi.h"

int ofi_mr_reg_raw(struct pride_tp *tp, void *buf, size_t len, struct fid_mr **mr)
{
    uint64_t key = tp->mr_key++;
    int ret = fi_mr_reg(tp->domain, buf, len, FI_SEND | FI_RECV, 0, key, 0, mr, NULL);
    if (ret)
        return pride_error(tp->ctx, PRIDE_ERR_TRANSPORT,
                           "rank %d: fi_mr_reg of %zu bytes at %p on %s: %s", tp->rank, len, buf,
                           tp->prov, fi_strerror(-ret));
    return PRIDE_OK;
}

int ofi_mr_get(struct pride_tp *tp, void *buf, size_t len, int kept, struct ofi_mr **out)
{
    uintptr_t lo = (uintptr_t)buf, hi = lo + len;
    if (!kept) {
        for (struct ofi_mr *m = tp->mrs; m; m = m->next) {
            if (m->lo <= lo && hi <= m->hi) {
                m->refs++;
                *out = m;
                return PRIDE_OK;
            }
        }
    }
    struct ofi_mr *m = calloc(1, sizeof *m);
    if (!m)
        return pride_error(tp->ctx, PRIDE_ERR_NOMEM, "rank %d: no memory for a registration",
                           tp->rank);
    int st = ofi_mr_reg_raw(tp, buf, len, &m->mr);
    if (st) {
        free(m);
        return st;
    }
    m->lo = lo;
    m->hi = hi;
    m->desc = fi_mr_desc(m->mr);
    m->kept = kept;
    m->refs = kept ? 0 : 1;
    m->next = tp->mrs;
    tp->mrs = m;
    *out = m;
    return PRIDE_OK;
}

static void mr_unlink(struct pride_tp *tp, struct ofi_mr *m)
{
    for (struct ofi_mr **pp = &tp->mrs; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    fi_close(&m->mr->fid);
    free(m);
}

/* Drop one operation's use; the registration closes when nobody holds it. */
void ofi_mr_put(struct pride_tp *tp, struct ofi_mr *m)
{
    m->refs--;
    if (m->refs == 0 && !m->kept)
        mr_unlink(tp, m);
}

/* mem_dereg: the user lets go; operations still in flight keep it until they end. */
void ofi_mr_unkeep(struct pride_tp *tp, struct ofi_mr *m)
{
    m->kept = 0;
    if (m->refs == 0)
        mr_unlink(tp, m);
}

void ofi_mr_release_all(struct pride_tp *tp)
{
    while (tp->mrs)
        mr_unlink(tp, tp->mrs);
}
