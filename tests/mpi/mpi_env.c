/*
 * mpi_env: a pride program that knows nothing of MPI, started by Open MPI's mpirun.
 * pride_init(NULL) must take rank and size from OMPI_COMM_WORLD_RANK/SIZE (PRIDE_RANK
 * is unset) and the store from PRIDE_STORE (mpirun -x). Run by tests/mpi/test_mpirun.c.
 *
 * The one idea: every result is checked against what each rank can compute alone,
 * and each rank prints "rank R of N: ... ok" only when all checks passed; any failure
 * exits 1, which mpirun turns into a failed job.
 */
#include <stdio.h>
#include <stdlib.h>

#include <pride/pride.h>

#define MPI_ENV_COUNT 100000 /* large enough to take the pipelined ring path */

static int env_fail(pride_context_t *ctx, const char *what, int st)
{
    fprintf(stderr, "mpi_env: %s: %s: %s\n", what, pride_strerror(st),
            ctx ? pride_last_error(ctx) : "");
    return 1;
}

int main(void)
{
    const char *er = getenv("OMPI_COMM_WORLD_RANK"), *en = getenv("OMPI_COMM_WORLD_SIZE");
    if (!er || !en || getenv("PRIDE_RANK")) {
        fprintf(stderr, "mpi_env: run me under mpirun, without PRIDE_RANK\n");
        return 1;
    }
    pride_context_t *ctx = NULL;
    int st = pride_init(NULL, &ctx);
    if (st != PRIDE_OK)
        return env_fail(NULL, "pride_init", st);
    int rank = pride_rank(ctx), n = pride_nranks(ctx), rc = 1;
    if (rank != atoi(er) || n != atoi(en)) {
        fprintf(stderr, "mpi_env: pride says rank %d of %d, Open MPI says %s of %s\n", rank, n, er,
                en);
        goto done;
    }
    float *v = malloc(MPI_ENV_COUNT * sizeof *v);
    if (!v)
        goto done;
    for (int i = 0; i < MPI_ENV_COUNT; i++)
        v[i] = (float)((rank + 1) * (i % 7 + 1));
    st = pride_allreduce(ctx, v, v, MPI_ENV_COUNT, PRIDE_FLOAT32, PRIDE_SUM);
    if (st != PRIDE_OK) {
        free(v);
        rc = env_fail(ctx, "pride_allreduce", st);
        goto done;
    }
    for (int i = 0; i < MPI_ENV_COUNT; i++)
        if (v[i] != (float)(n * (n + 1) / 2 * (i % 7 + 1))) {
            fprintf(stderr, "mpi_env: rank %d: element %d is %g, want %d\n", rank, i, v[i],
                    n * (n + 1) / 2 * (i % 7 + 1));
            free(v);
            goto done;
        }
    float first = v[0];
    free(v);
    int top = rank;
    st = pride_allreduce(ctx, &top, &top, 1, PRIDE_INT32, PRIDE_MAX);
    if (st != PRIDE_OK) {
        rc = env_fail(ctx, "pride_allreduce max", st);
        goto done;
    }
    if (top != n - 1) {
        fprintf(stderr, "mpi_env: rank %d: max of ranks is %d, want %d\n", rank, top, n - 1);
        goto done;
    }
    printf("rank %d of %d: OMPI_COMM_WORLD detected, allreduce sum %g max %d ok\n", rank, n, first,
           top);
    rc = 0;
done:
    pride_finalize(ctx);
    return rc;
}
