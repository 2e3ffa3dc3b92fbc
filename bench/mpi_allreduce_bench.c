/*
 * mpi_allreduce_bench: MPI_Allreduce (float32 sum) with pride-bench's columns and
 * size sweep, the baseline pride-bench is compared against (bench/compare-mpi.sh).
 *
 * One idea: measure exactly what pride-bench measures, the same way: warm-up
 * iterations, a barrier, -n timed iterations, the time shown is the largest
 * per-rank mean, algbw = size / time (GB = 1e9 bytes), busbw = algbw * 2(P-1)/P.
 * Sizes are rounded down to whole float32 elements. The --json and --csv files have
 * pride-bench's fields. Built with mpicc by bench/compare-mpi.sh; not part of the
 * CMake build.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>
#include "../tools/tool_size.h"

#define MB_EXIT_USAGE 2

struct mb_opts {
    size_t min_bytes, max_bytes;
    unsigned long factor;
    long iters, warmup;
    const char *json_path, *csv_path;
};

static const char mb_usage[] =
    "usage: mpirun -np P mpi_allreduce_bench [-b MIN] [-e MAX] [-f FACTOR] [-n ITERS]\n"
    "                                        [-w WARMUP] [--json FILE] [--csv FILE]\n"
    "  MPI_Allreduce of float32 sums; sizes in bytes with K/M/G (powers of 1024);\n"
    "  defaults -b 8 -e 64M -f 2 -n 20 -w 5. Columns as pride-bench.\n";


static int mb_parse_long(const char *s, long min, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min)
        return -1;
    *out = v;
    return 0;
}

/* Returns 0, or a message about the bad argument (written to err). */
static int mb_parse(int argc, char **argv, struct mb_opts *o, char *err, size_t errlen)
{
    *o = (struct mb_opts){.min_bytes = 8, .max_bytes = 64u << 20, .factor = 2, .iters = 20,
                          .warmup = 5};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            snprintf(err, errlen, "help");
            return 1;
        }
        if (i + 1 >= argc) {
            snprintf(err, errlen, "unknown option or missing value: '%s'", a);
            return -1;
        }
        const char *v = argv[++i];
        long l;
        int bad = 0;
        if (!strcmp(a, "-b"))
            bad = tool_parse_size(v, &o->min_bytes);
        else if (!strcmp(a, "-e"))
            bad = tool_parse_size(v, &o->max_bytes);
        else if (!strcmp(a, "-f"))
            bad = mb_parse_long(v, 2, &l) || (o->factor = (unsigned long)l, 0);
        else if (!strcmp(a, "-n"))
            bad = mb_parse_long(v, 1, &o->iters);
        else if (!strcmp(a, "-w"))
            bad = mb_parse_long(v, 0, &o->warmup);
        else if (!strcmp(a, "--json"))
            o->json_path = v;
        else if (!strcmp(a, "--csv"))
            o->csv_path = v;
        else {
            snprintf(err, errlen, "unknown option '%s'", a);
            return -1;
        }
        if (bad) {
            snprintf(err, errlen, "bad value '%s' for %s", v, a);
            return -1;
        }
    }
    if (o->min_bytes > o->max_bytes) {
        snprintf(err, errlen, "-b %zu is larger than -e %zu", o->min_bytes, o->max_bytes);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, nranks, rc = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);

    struct mb_opts o;
    char err[256];
    int pr = mb_parse(argc, argv, &o, err, sizeof err);
    if (pr) {
        if (rank == 0) {
            if (pr > 0)
                fputs(mb_usage, stdout);
            else
                fprintf(stderr, "mpi_allreduce_bench: %s (try --help)\n", err);
        }
        MPI_Finalize();
        return pr > 0 ? 0 : MB_EXIT_USAGE;
    }
    size_t maxcount = o.max_bytes / sizeof(float);
    float *send = malloc(maxcount ? maxcount * sizeof(float) : 1);
    float *recv = malloc(maxcount ? maxcount * sizeof(float) : 1);
    FILE *json = NULL, *csv = NULL;
    int bad = !send || !recv, worst;
    if (!bad && rank == 0 && o.json_path && !(json = fopen(o.json_path, "w"))) {
        fprintf(stderr, "mpi_allreduce_bench: cannot write %s: %s\n", o.json_path,
                strerror(errno));
        bad = 1;
    }
    if (!bad && rank == 0 && o.csv_path && !(csv = fopen(o.csv_path, "w"))) {
        fprintf(stderr, "mpi_allreduce_bench: cannot write %s: %s\n", o.csv_path,
                strerror(errno));
        bad = 1;
    }
    MPI_Allreduce(&bad, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (worst) {
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < maxcount; i++)
        send[i] = (float)((i * 7 + (size_t)rank * 13) % 5);

    const char *algo = getenv("OMPI_MCA_coll_tuned_allreduce_algorithm");
    if (rank == 0) {
        printf("# mpi_allreduce_bench: allreduce, nranks %d, transport mpi, algo %s\n", nranks,
               algo ? algo : "auto");
        printf("# iters %ld, warmup %ld, check off\n#\n", o.iters, o.warmup);
        printf("# %10s  %12s  %8s  %6s  %6s  %9s  %7s  %7s  %6s\n", "size", "count", "type",
               "redop", "root", "time", "algbw", "busbw", "#wrong");
        printf("# %10s  %12s  %8s  %6s  %6s  %9s  %7s  %7s  %6s\n", "(B)", "(elements)", "", "",
               "", "(us)", "(GB/s)", "(GB/s)", "");
        if (json)
            fputc('[', json);
        if (csv)
            fprintf(csv, "collective,nranks,transport,algo,size,count,type,redop,root,"
                         "time_us,algbw_gbps,busbw_gbps,wrong,iters,warmup,bytes_sent\n");
    }
    double factor = 2.0 * (nranks - 1) / nranks, busbw_sum = 0;
    int rows = 0;
    for (size_t bytes = o.min_bytes;; bytes *= o.factor) {
        size_t count = bytes / sizeof(float);
        if (count > 0) {
            for (long i = 0; i < o.warmup; i++)
                MPI_Allreduce(send, recv, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (long i = 0; i < o.iters; i++)
                MPI_Allreduce(send, recv, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double mean = (MPI_Wtime() - t0) * 1e6 / (double)o.iters, time_us;
            MPI_Allreduce(&mean, &time_us, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            size_t moved = count * sizeof(float);
            double algbw = time_us > 0 ? (double)moved / (time_us * 1e3) : 0;
            double busbw = algbw * factor;
            busbw_sum += busbw;
            if (rank == 0) {
                printf("%12zu  %12zu  %8s  %6s  %6d  %9.2f  %7.3f  %7.3f  %6s\n", moved, count,
                       "float32", "sum", -1, time_us, algbw, busbw, "N/A");
                fflush(stdout);
                if (json)
                    fprintf(json,
                            "%s\n  {\"collective\": \"allreduce\", \"nranks\": %d, "
                            "\"transport\": \"mpi\", \"algo\": \"%s\", \"size\": %zu, "
                            "\"count\": %zu, \"type\": \"float32\", \"redop\": \"sum\", "
                            "\"root\": -1, \"time_us\": %.3f, \"algbw_gbps\": %.6f, "
                            "\"busbw_gbps\": %.6f, \"wrong\": null, \"iters\": %ld, "
                            "\"warmup\": %ld}",
                            rows ? "," : "", nranks, algo ? algo : "auto", moved, count,
                            time_us, algbw, busbw, o.iters, o.warmup);
                if (csv)
                    fprintf(csv,
                            "allreduce,%d,mpi,%s,%zu,%zu,float32,sum,-1,%.3f,%.6f,%.6f,,%ld,%ld,\n",
                            nranks, algo ? algo : "auto", moved, count, time_us, algbw, busbw,
                            o.iters, o.warmup);
            }
            rows++;
        }
        if (bytes > o.max_bytes / o.factor)
            break;
    }
    if (rank == 0)
        printf("# Avg bus bandwidth    : %g\n", rows ? busbw_sum / rows : 0.0);
    if (json) {
        fputs("\n]\n", json);
        if (fclose(json)) {
            fprintf(stderr, "mpi_allreduce_bench: writing %s failed\n", o.json_path);
            rc = 1;
        }
        json = NULL;
    }
    if (csv) {
        if (fclose(csv)) {
            fprintf(stderr, "mpi_allreduce_bench: writing %s failed\n", o.csv_path);
            rc = 1;
        }
        csv = NULL;
    }
out:
    if (json)
        fclose(json);
    if (csv)
        fclose(csv);
    free(send);
    free(recv);
    MPI_Finalize();
    return rc;
}
