/*
 * pride_mpi: the start-up exchange of pride_init done by MPI. pride_init needs one
 * thing from a launcher besides rank and size: an allgather of a few bytes per rank
 * (addresses, the job key). Over an MPI communicator that is one MPI_Allgather.
 *
 * The one idea: the communicator travels in oob_user as its Fortran handle
 * (MPI_Comm_c2f), an integer in every MPI, so pride_mpi_config allocates nothing and
 * the caller has nothing to free. This file is built into its own library, only where
 * MPI was found, so libpride itself never depends on MPI.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pride/mpi.h"
#include "pride/status.h"

static int mpi_oob_allgather(void *user, const void *mine, void *all, size_t len)
{
    MPI_Comm comm = MPI_Comm_f2c((MPI_Fint)(intptr_t)user);
    if (len > INT_MAX)
        return PRIDE_ERR_INVALID;
    int rc = MPI_Allgather(mine, (int)len, MPI_BYTE, all, (int)len, MPI_BYTE, comm);
    return rc == MPI_SUCCESS ? PRIDE_OK : PRIDE_ERR_TRANSPORT;
}

static int mpi_invalid(const char *why)
{
    fprintf(stderr, "pride: pride_mpi_config: %s\n", why);
    return PRIDE_ERR_INVALID;
}

int pride_mpi_config(pride_config_t *cfg, MPI_Comm comm)
{
    if (!cfg)
        return mpi_invalid("cfg is NULL");
    if (cfg->size < offsetof(pride_config_t, oob_user) + sizeof cfg->oob_user || cfg->size > 4096)
        return mpi_invalid("cfg->size does not hold oob_allgather (start from PRIDE_CONFIG_INIT)");
    int flag = 0;
    if (MPI_Initialized(&flag) != MPI_SUCCESS || !flag)
        return mpi_invalid("MPI is not initialized (call MPI_Init first)");
    if (MPI_Finalized(&flag) != MPI_SUCCESS || flag)
        return mpi_invalid("MPI is already finalized");
    if (comm == MPI_COMM_NULL)
        return mpi_invalid("the communicator is MPI_COMM_NULL (a rank outside the split?)");
    int inter = 0, rank = -1, size = 0;
    if (MPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS)
        return mpi_invalid("MPI_Comm_test_inter failed on the communicator");
    if (inter)
        return mpi_invalid("the communicator is an intercommunicator; pass an intracommunicator");
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS ||
        rank < 0 || rank >= size)
        return mpi_invalid("MPI_Comm_rank or MPI_Comm_size failed on the communicator");
    cfg->rank = rank;
    cfg->nranks = size;
    cfg->oob_allgather = mpi_oob_allgather;
    cfg->oob_user = (void *)(intptr_t)MPI_Comm_c2f(comm);
    return PRIDE_OK;
}
