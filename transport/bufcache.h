/*
 * A few large buffers kept for reuse. A fresh large malloc is fresh pages (glibc maps
 * big blocks and unmaps them on free), and faulting them in costs more than the copy
 * or reduction they are wanted for. One per context (ctx->scratch): the tcp backend
 * keeps the payloads of frames that came before their receive there, the collectives
 * their scratch space. Thread-safe. Internal.
 */
#ifndef PRIDE_BUFCACHE_H
#define PRIDE_BUFCACHE_H

#include <pthread.h>
#include <stddef.h>

#define PRIDE_BUFCACHE_SLOTS 8

struct pride_bufcache {
    pthread_mutex_t mu;
    size_t limit; /* most bytes kept */
    int n;
    size_t bytes;
    struct {
        char *p;
        size_t cap;
    } b[PRIDE_BUFCACHE_SLOTS];
};

void pride_bufcache_init(struct pride_bufcache *c, size_t limit);
/* Free every buffer kept. */
void pride_bufcache_destroy(struct pride_bufcache *c);
/* At least len bytes (NULL for 0 or no memory): the best fit among those kept, when
   it is no more than four times too big, else a new one. *cap gets its size. */
void *pride_buf_get(struct pride_bufcache *c, size_t len, size_t *cap);
/* Give back a buffer of cap bytes (NULL is fine): kept while there is room (evicting
   smaller ones), else freed. Buffers under a page are just freed. */
void pride_buf_put(struct pride_bufcache *c, void *p, size_t cap);

#endif
