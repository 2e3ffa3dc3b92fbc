/*
 * Memory registrations of user buffers, keyed by page-aligned address range and
 * shared by the transfers that use them (a ring collective sends the same buffer to
 * one peer while receiving into it from another).
 *
 * The one idea: a registration pins the pages that were mapped when it was made. If
 * the application frees a buffer and malloc later maps fresh pages at the same
 * address, a registration kept from before would point the NIC at the old pages and
 * move stale data without a word. Without a hook on munmap (UCX's memory tracking, or
 * on-demand paging on the NIC) nothing here can tell, so a registration lives only
 * while a transfer uses it, or until mem_dereg for the ranges the caller registered
 * through mem_reg (the caller then promises the mapping stays).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "verbs.h"

int verbs_mr_get(struct verbs_mrcache *c, void *buf, size_t len, int access,
                 struct verbs_mr **out)
{
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)buf & ~(pg - 1);
    uintptr_t hi = ((uintptr_t)buf + len + pg - 1) & ~(pg - 1);
    for (struct verbs_mr *m = c->head; m; m = m->next) {
        if (m->mr && m->lo <= (uintptr_t)buf && (uintptr_t)buf + len <= m->hi &&
            (m->access & access) == access) {
            m->refs++;
            *out = m;
            return 0;
        }
    }
    struct verbs_mr *m = calloc(1, sizeof *m);
    if (!m)
        return ENOMEM;
    errno = 0;
    m->mr = c->api->reg_mr(c->pd, (void *)lo, hi - lo, access);
    if (!m->mr) {
        int e = errno ? errno : EINVAL;
        free(m);
        return e;
    }
    m->lo = lo;
    m->hi = hi;
    m->access = access;
    m->refs = 1;
    m->next = c->head;
    c->head = m;
    *out = m;
    return 0;
}

static void mr_unlink(struct verbs_mrcache *c, struct verbs_mr *m)
{
    struct verbs_mr **pp = &c->head;
    while (*pp != m)
        pp = &(*pp)->next;
    *pp = m->next;
    if (m->mr)
        c->api->dereg_mr(m->mr);
    free(m);
}

void verbs_mr_put(struct verbs_mrcache *c, struct verbs_mr *m)
{
    if (--m->refs == 0)
        mr_unlink(c, m);
}

void verbs_mr_revoke(struct verbs_mrcache *c)
{
    for (struct verbs_mr *m = c->head; m; m = m->next) {
        if (m->mr)
            c->api->dereg_mr(m->mr);
        m->mr = NULL;
    }
}

void verbs_mr_clear(struct verbs_mrcache *c)
{
    while (c->head)
        mr_unlink(c, c->head);
}
