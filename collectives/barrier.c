/*
 * Barrier by dissemination, which is also how collectives whose data does not flow
 * from every rank to every rank make sure all ranks agree on their arguments.
 *
 * Dissemination: in round k (k = 0 .. ceil(log2 P) - 1) rank r sends a 0-byte frame
 * to r + 2^k and waits for one from r - 2^k (mod P); it sends round k only after
 * receiving round k-1. After the last round a rank has heard, through a chain of
 * receives, from every rank: nobody leaves before everybody has entered. Every
 * receive is also a comparison of the two ranks' metas (the transport's), and the
 * chains reach every rank, so a rank that completes knows that all ranks called the
 * same collective with the same arguments; when some did not, the receive that sees
 * the difference fails, and its rank tells everyone (coll_end). That is what rooted
 * collectives run first: a broadcast's root otherwise hears from nobody.
 *
 * Round 0 is the tag-0 frame to the right neighbour that every collective sends
 * first (algos.h), which is what makes a barrier facing any other collective a
 * mismatch rather than a hang.
 */
#include "algos.h"

/* A valid address for 0-byte messages. */
static char check_byte;

int algo_check_post(struct coll *c, struct pride_xfer xs[2])
{
    int right = (c->rank + 1) % c->nranks, left = (c->rank + c->nranks - 1) % c->nranks;
    int st = coll_irecv(c, &xs[1], left, ALGO_TAG_CHECK, &check_byte, 0);
    if (st == PRIDE_OK)
        st = coll_isend(c, &xs[0], right, ALGO_TAG_CHECK, &check_byte, 0);
    return st;
}

int algo_agree(struct coll *c)
{
    int st = PRIDE_OK;
    for (int k = 0, d = 1; d < c->nranks && st == PRIDE_OK; k++, d <<= 1)
        st = algo_sendrecv(c, (c->rank + d) % c->nranks, (uint32_t)k, &check_byte, 0,
                           (c->rank + c->nranks - d) % c->nranks, (uint32_t)k, &check_byte, 0);
    return st;
}

int pride_barrier(pride_context_t *ctx)
{
    if (!ctx)
        return PRIDE_ERR_INVALID;
    struct coll c;
    int st = coll_begin(&c, ctx, PRIDE_COLL_BARRIER, 0, 0, 0, -1);
    if (st != PRIDE_OK)
        return st;
    return coll_end(&c, algo_agree(&c));
}
