/* A few large buffers kept for reuse (bufcache.h). */
#include <stdlib.h>

#include "bufcache.h"

void pride_bufcache_init(struct pride_bufcache *c, size_t limit)
{
    pthread_mutex_init(&c->mu, NULL);
    c->limit = limit;
    c->n = 0;
    c->bytes = 0;
}

void pride_bufcache_destroy(struct pride_bufcache *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->b[i].p);
    c->n = 0;
    c->bytes = 0;
    pthread_mutex_destroy(&c->mu);
}

void *pride_buf_get(struct pride_bufcache *c, size_t len, size_t *cap)
{
    *cap = 0;
    if (!len)
        return NULL;
    char *p = NULL;
    pthread_mutex_lock(&c->mu);
    int best = -1;
    for (int i = 0; i < c->n; i++) {
        size_t k = c->b[i].cap;
        if (k >= len && k / 4 <= len && (best < 0 || k < c->b[best].cap))
            best = i;
    }
    if (best >= 0) {
        p = c->b[best].p;
        *cap = c->b[best].cap;
        c->bytes -= *cap;
        c->b[best] = c->b[--c->n];
    }
    pthread_mutex_unlock(&c->mu);
    if (!p && (p = malloc(len)))
        *cap = len;
    return p;
}

void pride_buf_put(struct pride_bufcache *c, void *p, size_t cap)
{
    if (!p)
        return;
    if (cap < 4096 || cap > c->limit) {
        free(p);
        return;
    }
    char *drop = NULL;
    pthread_mutex_lock(&c->mu);
    while (c->n == PRIDE_BUFCACHE_SLOTS || c->bytes + cap > c->limit) {
        int small = 0;
        for (int i = 1; i < c->n; i++)
            if (c->b[i].cap < c->b[small].cap)
                small = i;
        if (c->b[small].cap >= cap) { /* everything kept is bigger: keep those */
            drop = p;
            break;
        }
        free(c->b[small].p);
        c->bytes -= c->b[small].cap;
        c->b[small] = c->b[--c->n];
    }
    if (!drop) {
        c->b[c->n].p = p;
        c->b[c->n].cap = cap;
        c->n++;
        c->bytes += cap;
    }
    pthread_mutex_unlock(&c->mu);
    free(drop);
}
