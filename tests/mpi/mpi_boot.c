/*
 * mpi_boot: an MPI program that starts pride over its communicators with
 * pride_mpi_config (include/pride/mpi.h): over MPI_COMM_WORLD and over the halves of
 * an MPI_Comm_split, with no PRIDE_* variable and no store. Run under mpirun by
 * tests/mpi/test_mpirun.c.
 *
 * The one idea: MPI itself is the reference. Each pride result is compared with
 * MPI_Allreduce of the same data on the same communicator, pride's rank with
 * MPI_Comm_rank, and the bad inputs (before MPI_Init, NULL, MPI_COMM_NULL, an
 * intercommunicator, after MPI_Finalize) must each give PRIDE_ERR_INVALID.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpi.h>
#include <pride/mpi.h>
#include <pride/pride.h>

#define BOOT_COUNT 65536

static int boot_world_rank = -1;

static int boot_fail(const char *what)
{
    fprintf(stderr, "mpi_boot: rank %d: %s\n", boot_world_rank, what);
    return 1;
}

/* Start pride over comm and check rank, size and a float sum against MPI's own. */
static int boot_check(MPI_Comm comm, pride_context_t **out)
{
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    pride_context_t *ctx = NULL;
    if (pride_mpi_config(&cfg, comm) != PRIDE_OK)
        return boot_fail("pride_mpi_config failed on a valid communicator");
    int st = pride_init(&cfg, &ctx);
    if (st != PRIDE_OK)
        return boot_fail(pride_strerror(st));
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    if (pride_rank(ctx) != rank || pride_nranks(ctx) != size) {
        fprintf(stderr, "mpi_boot: pride rank %d of %d, MPI rank %d of %d\n", pride_rank(ctx),
                pride_nranks(ctx), rank, size);
        pride_finalize(ctx);
        return 1;
    }
    float *v = malloc(2 * BOOT_COUNT * sizeof *v);
    if (!v) {
        pride_finalize(ctx);
        return boot_fail("out of memory");
    }
    float *ref = v + BOOT_COUNT;
    for (int i = 0; i < BOOT_COUNT; i++)
        v[i] = (float)(boot_world_rank * 3 + i % 11); /* integers: sums are exact */
    MPI_Allreduce(v, ref, BOOT_COUNT, MPI_FLOAT, MPI_SUM, comm);
    st = pride_allreduce(ctx, v, v, BOOT_COUNT, PRIDE_FLOAT32, PRIDE_SUM);
    int bad = st != PRIDE_OK;
    for (int i = 0; !bad && i < BOOT_COUNT; i++)
        if (v[i] != ref[i]) {
            fprintf(stderr, "mpi_boot: element %d: pride %g, MPI %g\n", i, v[i], ref[i]);
            bad = 1;
        }
    free(v);
    if (bad) {
        fprintf(stderr, "mpi_boot: allreduce: %s %s\n", pride_strerror(st), pride_last_error(ctx));
        pride_finalize(ctx);
        return 1;
    }
    *out = ctx;
    return 0;
}

int main(int argc, char **argv)
{
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    if (pride_mpi_config(&cfg, MPI_COMM_WORLD) != PRIDE_ERR_INVALID)
        return boot_fail("pride_mpi_config before MPI_Init was not PRIDE_ERR_INVALID");
    MPI_Init(&argc, &argv);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &boot_world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 2) {
        MPI_Finalize();
        return boot_fail("needs at least 2 ranks");
    }
    int rc = 1;
    pride_context_t *world = NULL, *half = NULL;
    MPI_Comm split = MPI_COMM_NULL, inter = MPI_COMM_NULL;

    pride_config_t small = PRIDE_CONFIG_INIT;
    small.size = offsetof(pride_config_t, oob_allgather);
    if (pride_mpi_config(NULL, MPI_COMM_WORLD) != PRIDE_ERR_INVALID ||
        pride_mpi_config(&cfg, MPI_COMM_NULL) != PRIDE_ERR_INVALID ||
        pride_mpi_config(&small, MPI_COMM_WORLD) != PRIDE_ERR_INVALID || small.rank != -1) {
        boot_fail("NULL cfg, MPI_COMM_NULL or a short cfg was not PRIDE_ERR_INVALID");
        goto done;
    }

    if (boot_check(MPI_COMM_WORLD, &world))
        goto done;

    /* Halves by parity, in reverse order of world rank: pride's rank must follow the
       split communicator, not the world. */
    int color = boot_world_rank % 2;
    MPI_Comm_split(MPI_COMM_WORLD, color, -boot_world_rank, &split);
    if (boot_check(split, &half))
        goto done;
    int srank;
    MPI_Comm_rank(split, &srank);

    /* both contexts live at once: the world one still works after the split one came up */
    int sum = boot_world_rank;
    if (pride_allreduce(world, &sum, &sum, 1, PRIDE_INT32, PRIDE_SUM) != PRIDE_OK ||
        sum != size * (size - 1) / 2) {
        boot_fail("world allreduce after the split was wrong");
        goto done;
    }

    /* an intercommunicator between the halves is refused; each half's leader is its
       highest world rank (the split reversed the order) */
    int other = 1 - color, other_leader = (size - 1) % 2 == other ? size - 1 : size - 2;
    MPI_Intercomm_create(split, 0, MPI_COMM_WORLD, other_leader, 7, &inter);
    if (pride_mpi_config(&cfg, inter) != PRIDE_ERR_INVALID) {
        boot_fail("an intercommunicator was not PRIDE_ERR_INVALID");
        goto done;
    }
    printf("rank %d of %d: pride_mpi world ok, split %d rank %d of %d ok, bad input refused ok\n",
           boot_world_rank, size, color, srank, pride_nranks(half));
    rc = 0;
done:
    if (rc != 0) /* the other ranks may be inside a collective: end the whole job */
        MPI_Abort(MPI_COMM_WORLD, 1);
    if (half)
        pride_finalize(half);
    if (world)
        pride_finalize(world);
    if (inter != MPI_COMM_NULL)
        MPI_Comm_free(&inter);
    if (split != MPI_COMM_NULL)
        MPI_Comm_free(&split);
    MPI_Finalize();
    if (rc == 0 && pride_mpi_config(&cfg, MPI_COMM_WORLD) != PRIDE_ERR_INVALID)
        return boot_fail("pride_mpi_config after MPI_Finalize was not PRIDE_ERR_INVALID");
    return rc;
}
