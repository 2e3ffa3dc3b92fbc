/**
 * @file pride/collectives.h
 * @brief Blocking and non-blocking collectives.
 *
 * sendbuf == recvbuf means in place. Every rank must call the same collectives in
 * the same order with matching count, dtype, op and root; a mismatch returns
 * PRIDE_ERR_MISMATCH on every rank (and leaves the context unusable: later calls
 * fail with PRIDE_ERR_MISMATCH too). AVG is accepted for FLOAT16, BFLOAT16, FLOAT32
 * and FLOAT64 only.
 */
#ifndef PRIDE_COLLECTIVES_H
#define PRIDE_COLLECTIVES_H

#include <stddef.h>

#include "pride/context.h"
#include "pride/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief recvbuf[i] = op over ranks of sendbuf[i], on every rank.
 * The algorithm is chosen by size and rank count, or forced by $PRIDE_ALLREDUCE_ALGO
 * (auto|ring|tree|rhd); every algorithm gives bit-identical results on every rank.
 */
int pride_allreduce(pride_context_t *ctx, const void *sendbuf, void *recvbuf, size_t count,
                    pride_dtype_t dtype, pride_op_t op);

/**
 * @brief Rank r receives block r (recvcount elements) of the reduction of every
 *        rank's sendbuf of nranks*recvcount elements.
 */
int pride_reduce_scatter(pride_context_t *ctx, const void *sendbuf, void *recvbuf,
                         size_t recvcount, pride_dtype_t dtype, pride_op_t op);

/** @brief recvbuf (nranks*sendcount elements) holds every rank's sendbuf in rank order. */
int pride_allgather(pride_context_t *ctx, const void *sendbuf, void *recvbuf, size_t sendcount,
                    pride_dtype_t dtype);

/** @brief Copy root's buf to every rank's buf. */
int pride_broadcast(pride_context_t *ctx, void *buf, size_t count, pride_dtype_t dtype, int root);

/** @brief recvbuf on root = op over ranks of sendbuf; recvbuf is ignored on other ranks. */
int pride_reduce(pride_context_t *ctx, const void *sendbuf, void *recvbuf, size_t count,
                 pride_dtype_t dtype, pride_op_t op, int root);

/**
 * @brief Block j of rank i's sendbuf lands in block i of rank j's recvbuf
 *        (blocks of count_per_rank elements). In place is allowed.
 */
int pride_alltoall(pride_context_t *ctx, const void *sendbuf, void *recvbuf,
                   size_t count_per_rank, pride_dtype_t dtype);

/** @brief Return only after every rank has entered the barrier. */
int pride_barrier(pride_context_t *ctx);

/** A non-blocking collective in flight. */
typedef struct pride_request pride_request_t;

/**
 * @brief Start an allreduce that progresses in the background; the buffers must stay
 *        untouched until pride_wait() or pride_test() reports completion. Several may be
 *        in flight; they count in the collective order at the moment they are started.
 * @param ctx the context
 * @param sendbuf count elements of this rank (sendbuf == recvbuf: in place)
 * @param recvbuf count elements: the reduction over every rank
 * @param count number of elements
 * @param dtype element type
 * @param op reduction
 * @param[out] req the request, written only on success
 * @return PRIDE_OK once started (the collective's own status comes from pride_wait()
 *         or pride_test()); PRIDE_ERR_INVALID for bad arguments, PRIDE_ERR_NOMEM, or
 *         the status of a context that has already failed
 */
int pride_iallreduce(pride_context_t *ctx, const void *sendbuf, void *recvbuf, size_t count,
                     pride_dtype_t dtype, pride_op_t op, pride_request_t **req);

/** @brief Wait for @p req to complete and free it; returns the collective's status. */
int pride_wait(pride_request_t *req);

/**
 * @brief Set *done to 1 if @p req has completed (then free it and return its status),
 *        else set *done to 0 and return PRIDE_OK.
 */
int pride_test(pride_request_t *req, int *done);

#ifdef __cplusplus
}
#endif
#endif
