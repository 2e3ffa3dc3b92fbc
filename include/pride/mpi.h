/**
 * @file pride/mpi.h
 * @brief Starting pride over the ranks of an MPI communicator (library pride_mpi).
 *
 * For a code that already runs MPI: pride_mpi_config() fills a pride_config_t so that
 * pride_init() takes its rank and rank count from an MPI communicator and exchanges
 * its start-up addresses with MPI_Allgather on it, instead of through a rendezvous
 * store. No PRIDE_STORE, PRIDE_RANK or launcher variable is needed.
 *
 * @code
 * MPI_Init(&argc, &argv);
 * pride_config_t cfg = PRIDE_CONFIG_INIT;
 * pride_context_t *ctx;
 * if (pride_mpi_config(&cfg, MPI_COMM_WORLD) != PRIDE_OK || pride_init(&cfg, &ctx) != PRIDE_OK)
 *     MPI_Abort(MPI_COMM_WORLD, 1);
 * ...                       // pride collectives; pride rank r is MPI rank r of the communicator
 * pride_finalize(ctx);
 * MPI_Finalize();
 * @endcode
 *
 * Link with pride_mpi and pride: `find_package(pride COMPONENTS mpi)` and the target
 * pride::pride_mpi, or `pkg-config --cflags --libs pride-mpi`. The library is built
 * only where CMake found MPI; the rest of pride never needs MPI.
 */
#ifndef PRIDE_MPI_H
#define PRIDE_MPI_H

#include <mpi.h>

#include "pride/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Fill @p cfg to start pride over the ranks of @p comm.
 *
 * Sets cfg->rank and cfg->nranks to the calling process's rank in @p comm and the
 * size of @p comm, and cfg->oob_allgather / cfg->oob_user to an MPI_Allgather on
 * @p comm. The other fields (transport, interface, timeout, job) are left as the
 * caller set them. Nothing is allocated: there is nothing to free.
 *
 * The pride_init() that follows is then collective over @p comm: every process of
 * @p comm must call it, and @p comm must stay valid (not freed) and must not be used
 * by another thread until pride_init() returns. After that, the context does not use
 * MPI at all; MPI and pride traffic may go on side by side. Calling it for
 * several communicators (e.g. the halves of an MPI_Comm_split) gives independent
 * pride jobs.
 *
 * @param[in,out] cfg a configuration that starts from PRIDE_CONFIG_INIT
 * @param comm an intracommunicator of an initialized (not yet finalized) MPI
 * @return PRIDE_OK; PRIDE_ERR_INVALID, with a sentence on standard error, for a NULL
 *         @p cfg, a @p cfg whose size field is too small to hold oob_allgather (not
 *         started from PRIDE_CONFIG_INIT), MPI not initialized or already finalized,
 *         MPI_COMM_NULL, or an intercommunicator
 */
int pride_mpi_config(pride_config_t *cfg, MPI_Comm comm);

#ifdef __cplusplus
}
#endif
#endif
