/*
 * Packet loss on emulated hosts (tools/pride-cluster up 4 --loss 1): four ranks,
 * one per network namespace, talk over a bridge that drops 1% of the packets each
 * host receives. TCP retransmits; every exchange, allreduce and broadcast must still
 * be bit-exact (and float allreduce identical on every rank), with and without frame
 * checksums. Without root or network namespaces the test skips and
 * says why; the cluster is torn down whether the test passed or not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "../reliability/rel.h"

#define NRANKS 4

static char prefix[32];
static char script[4096];

/* Run argv with its output in a temporary file, printed when it fails. */
static int run(char *const argv[])
{
    char path[] = "/tmp/pride-loss-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execvp(argv[0], argv);
        _exit(127);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    int st = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    if (st != 0) {
        char buf[4096];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = 0;
        print_message("%s exited %d: %s\n", argv[0], st, buf);
    }
    close(fd);
    unlink(path);
    return st;
}

static int setup(void **state)
{
    (void)state;
    snprintf(prefix, sizeof prefix, "pridel%d", (int)getpid());
    const char *src = getenv("PRIDE_SOURCE_DIR");
    snprintf(script, sizeof script, "%s/tools/pride-cluster", src ? src : ".");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (geteuid() == 0) {
        char *down[] = {script, "down", "--prefix", prefix, NULL};
        run(down);
    }
    return 0;
}

/* Allreduce (integer: against the closed form; float: every rank gets the same bits),
   and broadcast, large enough that many packets are lost on the way. */
static int collectives(pride_context_t *ctx, int rank, int n)
{
    enum { COUNT = 1 << 20 };
    uint32_t *u = malloc(COUNT * sizeof *u);
    float *f = malloc(COUNT * sizeof *f);
    uint64_t *digests = malloc((size_t)n * sizeof *digests);
    HCHECK(u && f && digests);
    for (int round = 0; round < 3; round++) {
        for (size_t j = 0; j < COUNT; j++) {
            u[j] = rel_word(rank, round, j);
            f[j] = (float)(rel_word(rank, round, j) % 1000003) * 1e-3f - 400.0f;
        }
        HCHECK_OK(ctx, pride_allreduce(ctx, u, u, COUNT, PRIDE_UINT32, PRIDE_SUM));
        for (size_t j = 0; j < COUNT; j++) {
            uint32_t want = 0;
            for (int p = 0; p < n; p++)
                want += rel_word(p, round, j);
            HCHECK(u[j] == want);
        }
        HCHECK_OK(ctx, pride_allreduce(ctx, f, f, COUNT, PRIDE_FLOAT32, PRIDE_SUM));
        uint64_t d = 1469598103934665603u;
        const unsigned char *b = (const unsigned char *)f;
        for (size_t j = 0; j < COUNT * sizeof *f; j++)
            d = (d ^ b[j]) * 1099511628211u;
        HCHECK_OK(ctx, pride_allgather(ctx, &d, digests, 1, PRIDE_UINT64));
        for (int p = 0; p < n; p++)
            HCHECK(digests[p] == d);
        int root = round % n;
        for (size_t j = 0; j < COUNT; j++)
            u[j] = rank == root ? rel_word(root, round + 7, j) : 0;
        HCHECK_OK(ctx, pride_broadcast(ctx, u, COUNT, PRIDE_UINT32, root));
        for (size_t j = 0; j < COUNT; j++)
            HCHECK(u[j] == rel_word(root, round + 7, j));
    }
    free(u);
    free(f);
    free(digests);
    return PRIDE_OK;
}

/* Each rank enters its host's namespace, then runs exchanges of several sizes. */
static int rank_fn(int rank, int nranks, const char *store, void *arg)
{
    const char *checksum = arg;
    char path[256];
    snprintf(path, sizeof path, "/var/run/netns/%s-h%d", prefix, rank);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    HCHECK(fd >= 0 && setns(fd, CLONE_NEWNET) == 0);
    close(fd);
    if (checksum)
        setenv("PRIDE_CHECKSUM", checksum, 1);
    else
        unsetenv("PRIDE_CHECKSUM");
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    cfg.rank = rank;
    cfg.nranks = nranks;
    cfg.store = store;
    cfg.timeout_ms = 120000;
    pride_context_t *ctx;
    HCHECK_OK(NULL, pride_init(&cfg, &ctx));
    static const size_t counts[] = {1, 1000, 100000, 1 << 20};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        HCHECK_OK(ctx, rel_check_sum(ctx, counts[i], 3));
    HCHECK_OK(ctx, collectives(ctx, rank, nranks));
    pride_finalize(ctx);
    return 0;
}

static void test_bit_exact_under_loss(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("skipped: network namespaces need root\n");
        skip();
    }
    char *up[] = {script, "up", "4", "--rate", "none", "--loss", "1", "--prefix", prefix, NULL};
    if (run(up) != 0) {
        print_message("skipped: pride-cluster cannot build namespaces here\n");
        skip();
    }
    struct harness_opts o = {.guard_s = 600};
    assert_int_equal(harness_fork(NRANKS, rank_fn, NULL, &o), 0);
    assert_int_equal(harness_fork(NRANKS, rank_fn, "crc32c", &o), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_bit_exact_under_loss, teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
