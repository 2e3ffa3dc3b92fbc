/*
 * Launch under Open MPI's mpirun, for real: mpirun starts the ranks, and
 *  - mpi_env (a pride program without MPI) finds its rank and size in
 *    OMPI_COMM_WORLD_RANK/SIZE through pride_init(NULL) and runs checked allreduces;
 *  - mpi_boot (an MPI program) starts pride with pride_mpi_config over MPI_COMM_WORLD
 *    and over the halves of an MPI_Comm_split, compares pride's sums with
 *    MPI_Allreduce and checks that bad input gives PRIDE_ERR_INVALID.
 * Each rank prints "rank R of N: ... ok" only when its checks passed; this file wants
 * that line from every rank and mpirun's exit status 0.
 *
 * The one idea: the launcher is the real one with the flags a user on one machine
 * would give it (loopback only, tcp BTL); the test is skipped, saying so, only where
 * mpirun does not exist, or (for mpi_boot) where CMake found no MPI to build against.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static int have_mpirun;

static int setup(void **state)
{
    (void)state;
    have_mpirun = system("command -v mpirun >/dev/null 2>&1") == 0;
    if (!have_mpirun)
        printf("mpirun is not installed (Debian: openmpi-bin): skipped\n");
    snprintf(dir, sizeof dir, "/tmp/pride-mpirun-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Run prog on np ranks under mpirun, with the environment cleaned of every variable
   pride_init would read before OMPI_COMM_WORLD_*; extra is more of mpirun's options.
   Every rank must print "rank R of np: " ... " ok" and the job must succeed. */
static void mpirun_check(const char *prog, int np, const char *extra, const char *tag)
{
    char out[128], cmd[2048];
    snprintf(out, sizeof out, "%s/%s.out", dir, tag);
    snprintf(cmd, sizeof cmd,
             "unset PRIDE_RANK PRIDE_NRANKS PRIDE_STORE PRIDE_JOB SLURM_PROCID SLURM_NTASKS "
             "PMI_RANK PMI_SIZE; timeout 300 mpirun %s--oversubscribe -np %d --mca pml ob1 "
             "--mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo "
             "--mca mpi_yield_when_idle 1 %s '%s' >'%s' 2>&1",
             geteuid() == 0 ? "--allow-run-as-root " : "", np, extra, prog, out);
    int st = system(cmd);
    char line[512];
    int seen[64] = {0};
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        fputs(line, stdout);
        int r, n;
        size_t len = strlen(line);
        if (sscanf(line, "rank %d of %d: ", &r, &n) == 2 && n == np && r >= 0 && r < np &&
            len >= 3 && !strcmp(line + len - 3, "ok\n"))
            seen[r]++;
    }
    fclose(f);
    assert_true(st != -1 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    for (int r = 0; r < np; r++) {
        if (seen[r] != 1)
            fprintf(stderr, "%s: rank %d printed %d result lines, want 1\n", tag, r, seen[r]);
        assert_int_equal(seen[r], 1);
    }
}

static void test_env_detection(void **state)
{
    (void)state;
    if (!have_mpirun)
        skip();
    const char *bin = getenv("PRIDE_MPI_ENV");
    assert_non_null(bin);
    char extra[256];
    snprintf(extra, sizeof extra, "-x PRIDE_STORE=file:%s/store -x PRIDE_JOB=mpirun-env", dir);
    mpirun_check(bin, 4, extra, "env");
}

/* A loopback port the kernel just handed out, for rank 0's tcp store. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* The same over rank 0's tcp store: the address every rank can reach is loopback. */
static void test_env_detection_tcp_store(void **state)
{
    (void)state;
    if (!have_mpirun)
        skip();
    const char *bin = getenv("PRIDE_MPI_ENV");
    assert_non_null(bin);
    char extra[256];
    snprintf(extra, sizeof extra, "-x PRIDE_STORE=tcp:127.0.0.1:%d", free_port());
    mpirun_check(bin, 3, extra, "env-tcp");
}

static void test_pride_mpi(void **state)
{
    (void)state;
    if (!have_mpirun)
        skip();
    const char *bin = getenv("PRIDE_MPI_BOOT");
    if (!bin || !*bin) {
        printf("pride_mpi is not built (CMake found no MPI, Debian: libopenmpi-dev; or "
               "-DPRIDE_MPI=OFF): skipped\n");
        skip();
    }
    /* In the sanitizer build, Open MPI's own start-up allocations (in components it
       dlopens, so LeakSanitizer cannot even name them) are reported as leaks at exit;
       CMake then sets PRIDE_MPI_BOOT_ASAN=detect_leaks=0 for this MPI program only.
       AddressSanitizer and UBSan stay on, and pride_mpi_config allocates nothing. */
    const char *asan = getenv("PRIDE_MPI_BOOT_ASAN");
    char extra[128] = "";
    if (asan && *asan) {
        printf("sanitizer build: mpi_boot runs with ASAN_OPTIONS=%s (Open MPI's leaks)\n", asan);
        snprintf(extra, sizeof extra, "-x ASAN_OPTIONS=%s", asan);
    }
    mpirun_check(bin, 4, extra, "boot4");
    mpirun_check(bin, 3, extra, "boot3"); /* halves of 2 and 1 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_detection),
        cmocka_unit_test(test_env_detection_tcp_store),
        cmocka_unit_test(test_pride_mpi),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
