/*
 * mpi_netns_check: an MPI program for tests/cluster/mpirun.sh. Each rank reports the
 * IPv4 address of its interface IFNAME (argv[1], default eth0), so the test can see
 * that every rank runs in its own emulated host, and the ranks check an
 * MPI_Allreduce (float32 sum) of COUNT elements (argv[2], default 262144) against
 * the sum computed locally.
 *
 * Prints, on rank 0, one line "rank R ADDRESS" per rank and then "allreduce ok" or
 * "allreduce wrong N"; exits 0 only when every rank found its address and no element
 * is wrong. Built with mpicc by the test, not by CMake.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#define CHECK_ADDR_LEN 64

/* The IPv4 address of ifname as text, or "none". */
static void check_addr(const char *ifname, char out[CHECK_ADDR_LEN])
{
    struct ifaddrs *ifs, *it;
    snprintf(out, CHECK_ADDR_LEN, "none");
    if (getifaddrs(&ifs) != 0)
        return;
    for (it = ifs; it; it = it->ifa_next) {
        if (it->ifa_addr && it->ifa_addr->sa_family == AF_INET && !strcmp(it->ifa_name, ifname)) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)it->ifa_addr;
            inet_ntop(AF_INET, &sin->sin_addr, out, CHECK_ADDR_LEN);
            break;
        }
    }
    freeifaddrs(ifs);
}

/* Element i of rank r's input: small integers, so float32 sums are exact. */
static float check_value(size_t i, int r)
{
    return (float)((i * 7 + (size_t)r * 13) % 11);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, nranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    const char *ifname = argc > 1 ? argv[1] : "eth0";
    long count = argc > 2 ? strtol(argv[2], NULL, 10) : 262144;
    if (count < 1 || count > (1L << 26)) {
        if (rank == 0)
            fprintf(stderr, "mpi_netns_check: COUNT must be 1..%ld\n", 1L << 26);
        MPI_Finalize();
        return 2;
    }

    char addr[CHECK_ADDR_LEN];
    check_addr(ifname, addr);
    char *all = rank == 0 ? calloc((size_t)nranks, CHECK_ADDR_LEN) : NULL;
    MPI_Gather(addr, CHECK_ADDR_LEN, MPI_CHAR, all, CHECK_ADDR_LEN, MPI_CHAR, 0, MPI_COMM_WORLD);

    size_t n = (size_t)count;
    float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    int bad = !in || !out || (rank == 0 && !all), anybad = 0;
    MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (anybad) {
        if (rank == 0)
            fprintf(stderr, "mpi_netns_check: out of memory\n");
        MPI_Finalize();
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        in[i] = check_value(i, rank);
    MPI_Allreduce(in, out, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    long wrong = 0, allwrong = 0;
    for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int r = 0; r < nranks; r++)
            want += check_value(i, r);
        wrong += out[i] != want;
    }
    MPI_Reduce(&wrong, &allwrong, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);

    int rc = 0;
    if (rank == 0) {
        for (int r = 0; r < nranks; r++) {
            const char *a = all + (size_t)r * CHECK_ADDR_LEN;
            printf("rank %d %s\n", r, a);
            rc |= !strcmp(a, "none");
        }
        if (allwrong)
            printf("allreduce wrong %ld\n", allwrong);
        else
            printf("allreduce ok\n");
        rc |= allwrong != 0;
        fflush(stdout);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    free(in);
    free(out);
    free(all);
    MPI_Finalize();
    return rc;
}
