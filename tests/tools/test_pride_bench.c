/*
 * pride-bench end to end: start real rank processes of the built binary (found
 * through $PRIDE_TOOLS_DIR) with PRIDE_RANK / PRIDE_NRANKS / PRIDE_STORE, run it with
 * --check --json for several collectives and read the JSON back: every rank must
 * exit 0 and every row must report 0 wrong elements. Bad command lines must exit 2
 * with a one-line message, and a root that is not a rank must stop every rank with 2.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define BENCH_GUARD_S 240
#define BENCH_MAX_RANKS 8
#define BENCH_MAX_ARGS 32

static char bench_bin[4096];

static int bench_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/*
 * Run nranks copies of pride-bench with args (NULL-terminated) over a fresh file
 * store; status[r] gets each rank's exit status (-1: killed or did not exit). With
 * nranks == 0, run one process without rank variables. If err is not NULL, rank 0's
 * (or the single process's) stderr is captured into it.
 */
static void bench_spawn(int nranks, const char *const *args, int *status, char *err,
                        size_t errlen)
{
    char dir[] = "/tmp/pride-bench-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char store[64];
    snprintf(store, sizeof store, "file:%s", dir);
    const char *argv[BENCH_MAX_ARGS + 2] = {bench_bin};
    int argc = 1;
    for (; args[argc - 1]; argc++) {
        assert_true(argc <= BENCH_MAX_ARGS);
        argv[argc] = args[argc - 1];
    }
    argv[argc] = NULL;

    int nproc = nranks ? nranks : 1;
    pid_t pids[BENCH_MAX_RANKS];
    int pipefd[2] = {-1, -1};
    if (err)
        assert_int_equal(pipe(pipefd), 0);
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < nproc; r++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            char buf[16];
            if (nranks) {
                snprintf(buf, sizeof buf, "%d", r);
                setenv("PRIDE_RANK", buf, 1);
                snprintf(buf, sizeof buf, "%d", nranks);
                setenv("PRIDE_NRANKS", buf, 1);
                setenv("PRIDE_STORE", store, 1);
                setenv("PRIDE_TIMEOUT_MS", "20000", 1);
            } else {
                unsetenv("PRIDE_RANK");
                unsetenv("PRIDE_NRANKS");
                unsetenv("PRIDE_STORE");
            }
            if (err && r == 0)
                dup2(pipefd[1], STDERR_FILENO);
            if (err) {
                close(pipefd[0]);
                close(pipefd[1]);
            }
            execv(bench_bin, (char *const *)argv);
            fprintf(stderr, "exec %s: %s\n", bench_bin, strerror(errno));
            _exit(127);
        }
        pids[r] = pid;
        status[r] = -1;
    }
    if (err) {
        close(pipefd[1]);
        size_t len = 0;
        ssize_t n;
        while (len + 1 < errlen && (n = read(pipefd[0], err + len, errlen - 1 - len)) > 0)
            len += (size_t)n;
        err[len] = '\0';
        close(pipefd[0]);
    }
    /* Reap with a generous hang guard; sleeping between polls, never spinning. */
    time_t deadline = time(NULL) + BENCH_GUARD_S;
    int left = nproc;
    while (left > 0) {
        int ws;
        pid_t pid = waitpid(-1, &ws, WNOHANG);
        if (pid > 0) {
            for (int r = 0; r < nproc; r++)
                if (pids[r] == pid) {
                    status[r] = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
                    pids[r] = 0;
                    left--;
                }
            continue;
        }
        if (time(NULL) > deadline) {
            for (int r = 0; r < nproc; r++)
                if (pids[r] > 0) {
                    kill(pids[r], SIGKILL);
                    waitpid(pids[r], NULL, 0);
                    pids[r] = 0;
                    left--;
                }
            break;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    nftw(dir, bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *bench_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static int bench_occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Run a checked sweep on nranks ranks; expect every rank to exit 0 and the JSON to
   hold `rows` rows, each with 0 wrong elements and the right rank count. */
static void bench_checked(int nranks, int rows, const char *coll, const char *const *extra)
{
    char json[] = "/tmp/pride-bench-json-XXXXXX";
    int fd = mkstemp(json);
    assert_true(fd >= 0);
    close(fd);
    const char *args[BENCH_MAX_ARGS + 1] = {"-c", coll, "-b", "8", "-e", "64K", "-f", "8",
                                            "-n", "3", "-w", "1", "--check", "--json", json};
    for (int i = 0; extra && extra[i]; i++) {
        assert_true(15 + i < BENCH_MAX_ARGS);
        args[15 + i] = extra[i];
    }
    int status[BENCH_MAX_RANKS];
    bench_spawn(nranks, args, status, NULL, 0);
    for (int r = 0; r < nranks; r++) {
        if (status[r] != 0)
            fail_msg("%s on %d ranks: rank %d exited with %d", coll, nranks, r, status[r]);
    }
    const char *out = bench_slurp(json);
    unlink(json);
    char want[64];
    snprintf(want, sizeof want, "\"collective\": \"%s\"", coll);
    assert_int_equal(bench_occurrences(out, want), rows);
    snprintf(want, sizeof want, "\"nranks\": %d,", nranks);
    assert_int_equal(bench_occurrences(out, want), rows);
    assert_int_equal(bench_occurrences(out, "\"wrong\": "), rows);
    assert_int_equal(bench_occurrences(out, "\"wrong\": 0,"), rows);
    assert_int_equal(bench_occurrences(out, "\"bytes_sent_per_rank\": ["), rows);
}

/* Sizes 8, 64, 512, 4K, 32K: rows are the sizes that hold at least one element
   (per rank, for the blocked collectives). */
static void test_allreduce_float32(void **state)
{
    (void)state;
    bench_checked(3, 5, "allreduce", NULL);
}

static void test_allreduce_dtypes_ops_algos(void **state)
{
    (void)state;
    bench_checked(2, 5, "allreduce", (const char *[]){"-d", "int8", "-o", "prod", NULL});
    bench_checked(3, 5, "allreduce",
                  (const char *[]){"-d", "int64", "-o", "min", "-a", "ring", NULL});
    bench_checked(3, 5, "allreduce",
                  (const char *[]){"-d", "float64", "-o", "avg", "-a", "rhd", NULL});
    bench_checked(3, 5, "allreduce", (const char *[]){"-d", "uint32", "-a", "tree", NULL});
}

static void test_allreduce_half_types(void **state)
{
    (void)state;
    bench_checked(3, 5, "allreduce", (const char *[]){"-d", "float16", NULL});
    bench_checked(2, 5, "allreduce", (const char *[]){"-d", "bfloat16", "-o", "avg", NULL});
}

static void test_reduce_scatter(void **state)
{
    (void)state;
    /* 8 B holds no block of 3 floats: 4 rows */
    bench_checked(3, 4, "reduce_scatter", (const char *[]){"-o", "max", NULL});
}

static void test_allgather_alltoall(void **state)
{
    (void)state;
    bench_checked(2, 5, "allgather", (const char *[]){"-d", "uint8", NULL});
    bench_checked(3, 4, "alltoall", NULL);
}

static void test_broadcast_reduce_root1(void **state)
{
    (void)state;
    bench_checked(3, 5, "broadcast", (const char *[]){"-r", "1", NULL});
    bench_checked(2, 5, "reduce", (const char *[]){"-r", "1", "-d", "int32", NULL});
}

static void test_vote(void **state)
{
    (void)state;
    bench_checked(3, 5, "vote", NULL);
    bench_checked(2, 5, "vote", NULL); /* even: ties follow the tie rule */
    bench_checked(3, 5, "vote_count", NULL);
    bench_checked(2, 5, "vote_allgather", NULL);
}

static void test_barrier(void **state)
{
    (void)state;
    bench_checked(3, 1, "barrier", NULL);
}

/* One process, no rank variables: parsing fails before pride_init. */
static void bench_expect_usage_error(const char *const *args)
{
    int status[1];
    char err[4096];
    bench_spawn(0, args, status, err, sizeof err);
    if (status[0] != 2)
        fail_msg("%s ...: exit %d, want 2 (stderr: %s)", args[0], status[0], err);
    assert_int_equal(bench_occurrences(err, "\n"), 1);
    assert_non_null(strstr(err, "pride-bench: "));
}

static void test_bad_flags_exit_2(void **state)
{
    (void)state;
    static const char *const cases[][5] = {
        {"-c", "allreduse", NULL},
        {"-b", "1X", NULL},
        {"-b", "-8", NULL},
        {"-b", "1M", "-e", "1K", NULL},
        {"-f", "1", NULL},
        {"-n", "0", NULL},
        {"-w", "x", NULL},
        {"-d", "float128", NULL},
        {"-o", "xor", NULL},
        {"-o", "avg", "-d", "int32", NULL},
        {"-c", "vote", "-d", "float32", NULL},
        {"-c", "allgather", "-o", "sum", NULL},
        {"-a", "butterfly", NULL},
        {"-r", "-1", NULL},
        {"--bogus", NULL},
        {"-z", NULL},
        {"-n", NULL},
        {"--json", NULL},
        {"stray", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        bench_expect_usage_error(cases[i]);
}

static void test_root_not_a_rank_exit_2(void **state)
{
    (void)state;
    const char *args[] = {"-c", "broadcast", "-r", "2", "-b", "8", "-e", "8", NULL};
    int status[2];
    char err[4096];
    bench_spawn(2, args, status, err, sizeof err);
    assert_int_equal(status[0], 2);
    assert_int_equal(status[1], 2);
    assert_int_equal(bench_occurrences(err, "\n"), 1);
}

static void test_help_exit_0(void **state)
{
    (void)state;
    const char *args[] = {"--help", NULL};
    int status[1];
    bench_spawn(0, args, status, NULL, 0);
    assert_int_equal(status[0], 0);
}

int main(void)
{
    const char *dir = getenv("PRIDE_TOOLS_DIR");
    if (!dir) {
        fprintf(stderr, "PRIDE_TOOLS_DIR is not set (ctest sets it to the build directory)\n");
        return 1;
    }
    snprintf(bench_bin, sizeof bench_bin, "%s/pride-bench", dir);
    if (access(bench_bin, X_OK)) {
        fprintf(stderr, "%s: %s\n", bench_bin, strerror(errno));
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_exit_0),
        cmocka_unit_test(test_bad_flags_exit_2),
        cmocka_unit_test(test_root_not_a_rank_exit_2),
        cmocka_unit_test(test_allreduce_float32),
        cmocka_unit_test(test_allreduce_dtypes_ops_algos),
        cmocka_unit_test(test_allreduce_half_types),
        cmocka_unit_test(test_reduce_scatter),
        cmocka_unit_test(test_allgather_alltoall),
        cmocka_unit_test(test_broadcast_reduce_root1),
        cmocka_unit_test(test_vote),
        cmocka_unit_test(test_barrier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
