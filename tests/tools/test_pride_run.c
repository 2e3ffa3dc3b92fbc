/*
 * Tests of the launcher pride-run, run as a real program (found in $PRIDE_TOOLS_DIR)
 * with `sh -c` scripts as ranks: output prefixing, the environment each rank sees,
 * exit-status propagation with the other ranks ended, and usage errors.
 *
 * The one idea: every check reads what pride-run printed and how it exited, and for
 * "the others were ended" it checks the processes themselves are gone (their pids
 * written by the ranks), never how long anything took.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct tool_out {
    int status; /* exit code, or 128 + signal */
    char *out;  /* everything on stdout */
    char *err;  /* everything on stderr */
};

static char *tool_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* Run pride-run with args (NULL-terminated), capturing stdout and stderr. */
static struct tool_out tool_run(const char *const *args)
{
    const char *dir = getenv("PRIDE_TOOLS_DIR");
    if (!dir)
        fail_msg("PRIDE_TOOLS_DIR is not set (ctest sets it to the build directory)");
    char prog[4096];
    snprintf(prog, sizeof prog, "%s/pride-run", dir);
    char *argv[64];
    int argc = 0;
    argv[argc++] = prog;
    for (; args[argc - 1]; argc++) {
        assert_true(argc < 63);
        argv[argc] = (char *)args[argc - 1];
    }
    argv[argc] = NULL;

    char outp[] = "/tmp/pride-run-test-out-XXXXXX";
    char errp[] = "/tmp/pride-run-test-err-XXXXXX";
    int ofd = mkstemp(outp), efd = mkstemp(errp);
    assert_true(ofd >= 0 && efd >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(ofd, STDOUT_FILENO);
        dup2(efd, STDERR_FILENO);
        execv(prog, argv);
        _exit(126);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    close(ofd);
    close(efd);
    struct tool_out r;
    r.status = WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws);
    r.out = tool_slurp(outp);
    r.err = tool_slurp(errp);
    unlink(outp);
    unlink(errp);
    return r;
}

static void tool_free(struct tool_out *r)
{
    free(r->out);
    free(r->err);
}

/* Number of lines of text equal to line. */
static int count_lines(const char *text, const char *line)
{
    int n = 0;
    size_t len = strlen(line);
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        if (l == len && !memcmp(p, line, len))
            n++;
        p += l + (nl != NULL);
    }
    return n;
}

static int count_all_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

static void test_prefixes_output(void **state)
{
    (void)state;
    const char *args[] = {"-n", "3", "--", "/bin/sh", "-c",
                          "echo hello $PRIDE_RANK; echo oops $PRIDE_RANK >&2; printf tail",
                          NULL};
    struct tool_out r = tool_run(args);
    assert_int_equal(r.status, 0);
    for (int k = 0; k < 3; k++) {
        char want[64];
        snprintf(want, sizeof want, "[%d] hello %d", k, k);
        assert_int_equal(count_lines(r.out, want), 1);
        snprintf(want, sizeof want, "[%d] tail", k); /* partial last line, flushed */
        assert_int_equal(count_lines(r.out, want), 1);
        snprintf(want, sizeof want, "[%d] oops %d", k, k);
        assert_int_equal(count_lines(r.err, want), 1);
        assert_int_equal(count_lines(r.out, want), 0);
    }
    assert_int_equal(count_all_lines(r.out), 6);
    tool_free(&r);
}

/* Many ranks writing many lines at once: every line arrives whole, exactly once. */
static void test_lines_never_interleave(void **state)
{
    (void)state;
    const char *args[] = {"-n", "4", "/bin/sh", "-c",
                          "i=0; while [ $i -lt 300 ]; do "
                          "echo line-$PRIDE_RANK-$i-abcdefghijklmnopqrstuvwxyz0123456789; "
                          "i=$((i+1)); done",
                          NULL};
    struct tool_out r = tool_run(args);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_all_lines(r.out), 4 * 300);
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 300; i += 37) {
            char want[128];
            snprintf(want, sizeof want, "[%d] line-%d-%d-abcdefghijklmnopqrstuvwxyz0123456789",
                     k, k, i);
            assert_int_equal(count_lines(r.out, want), 1);
        }
    }
    tool_free(&r);
}

static void test_rank_env(void **state)
{
    (void)state;
    const char *args[] = {"-n", "4", "--transport", "tcp", "--timeout-ms", "1234", "/bin/sh",
                          "-c",
                          "echo $PRIDE_RANK $PRIDE_NRANKS $PRIDE_STORE $PRIDE_JOB "
                          "$PRIDE_TRANSPORT $PRIDE_TIMEOUT_MS",
                          NULL};
    struct tool_out r = tool_run(args);
    assert_int_equal(r.status, 0);
    char store0[512] = "", job0[256] = "";
    int seen[4] = {0};
    const char *p = r.out;
    for (int line = 0; line < 4; line++) {
        int pr, rank, nranks, ms;
        char store[512], job[256], tr[32];
        int used = 0;
        assert_int_equal(sscanf(p, "[%d] %d %d %511s %255s %31s %d%n", &pr, &rank, &nranks,
                                store, job, tr, &ms, &used),
                         7);
        assert_int_equal(pr, rank);
        assert_true(rank >= 0 && rank < 4);
        assert_int_equal(seen[rank], 0);
        seen[rank] = 1;
        assert_int_equal(nranks, 4);
        assert_string_equal(tr, "tcp");
        assert_int_equal(ms, 1234);
        assert_memory_equal(store, "file:", 5);
        if (line == 0) {
            strcpy(store0, store);
            strcpy(job0, job);
        }
        assert_string_equal(store, store0);
        assert_string_equal(job, job0);
        p += used;
        assert_int_equal(*p, '\n');
        p++;
    }
    /* The fresh store directory is gone once pride-run has exited. */
    struct stat st;
    assert_int_equal(stat(store0 + 5, &st), -1);
    assert_int_equal(errno, ENOENT);

    /* A second run gets another job name and store. */
    struct tool_out r2 = tool_run(args);
    assert_int_equal(r2.status, 0);
    assert_null(strstr(r2.out, job0));
    assert_null(strstr(r2.out, store0));
    tool_free(&r2);
    tool_free(&r);
}

static void test_store_option(void **state)
{
    (void)state;
    char dir[] = "/tmp/pride-run-test-store-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char spec[64];
    snprintf(spec, sizeof spec, "file:%s", dir);
    const char *args[] = {"-n", "2", "--store", spec, "/bin/sh", "-c",
                          "echo $PRIDE_STORE; touch ${PRIDE_STORE#file:}/r$PRIDE_RANK", NULL};
    struct tool_out r = tool_run(args);
    assert_int_equal(r.status, 0);
    char want[128];
    snprintf(want, sizeof want, "[1] %s", spec);
    assert_int_equal(count_lines(r.out, want), 1);
    /* A store given by the user is the user's: it is left in place. */
    char path[128];
    snprintf(path, sizeof path, "%s/r1", dir);
    assert_int_equal(access(path, F_OK), 0);
    unlink(path);
    snprintf(path, sizeof path, "%s/r0", dir);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
    tool_free(&r);
}

/* Rank 1 exits 3 once ranks 0 and 2 sleep (with SIGTERM ignored when stubborn):
   pride-run must exit 3, and the sleeping ranks must be gone. */
static void failure_ends_others(int stubborn)
{
    char dir[] = "/tmp/pride-run-test-fail-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char spec[64];
    snprintf(spec, sizeof spec, "file:%s", dir);
    char script[1024];
    snprintf(script, sizeof script,
             "d=${PRIDE_STORE#file:}; "
             "if [ $PRIDE_RANK = 1 ]; then "
             /* wait (bounded: a hang guard) until the others have written their pids */
             "  i=0; while [ ! -e $d/pid.0 ] || [ ! -e $d/pid.2 ]; do "
             "    i=$((i+1)); [ $i -gt 2000 ] && exit 9; sleep 0.05; done; "
             "  exit 3; "
             "fi; "
             "%s"
             "echo $$ > $d/tmp.$PRIDE_RANK && mv $d/tmp.$PRIDE_RANK $d/pid.$PRIDE_RANK; "
             "exec sleep 100",
             stubborn ? "trap '' TERM; " : "");
    const char *args[] = {"-n", "3", "--store", spec, "/bin/sh", "-c", script, NULL};
    struct tool_out r = tool_run(args);
    assert_int_equal(r.status, 3);
    assert_non_null(strstr(r.err, "rank 1 exited with status 3"));
    for (int k = 0; k < 3; k += 2) {
        char path[128];
        snprintf(path, sizeof path, "%s/pid.%d", dir, k);
        char *txt = tool_slurp(path);
        pid_t pid = (pid_t)atoi(txt);
        free(txt);
        assert_true(pid > 1);
        assert_int_equal(kill(pid, 0), -1);
        assert_int_equal(errno, ESRCH);
        unlink(path);
    }
    assert_int_equal(rmdir(dir), 0);
    tool_free(&r);
}

static void test_failure_ends_others(void **state)
{
    (void)state;
    failure_ends_others(0);
}

/* Ranks that ignore SIGTERM are killed after the grace period. */
static void test_failure_kills_stubborn(void **state)
{
    (void)state;
    failure_ends_others(1);
}

static void test_signal_status(void **state)
{
    (void)state;
    const char *args[] = {"-n", "2", "/bin/sh", "-c",
                          "if [ $PRIDE_RANK = 1 ]; then kill -KILL $$; fi; exec sleep 100",
                          NULL};
    struct tool_out r = tool_run(args);
    assert_int_equal(r.status, 128 + SIGKILL);
    tool_free(&r);
}

static void expect_usage_error(const char *const *args)
{
    struct tool_out r = tool_run(args);
    assert_int_equal(r.status, 2);
    assert_memory_equal(r.err, "pride-run: ", 11);
    assert_int_equal(count_all_lines(r.err), 1);
    assert_string_equal(r.out, "");
    tool_free(&r);
}

static void test_usage_errors(void **state)
{
    (void)state;
    const char *n0[] = {"-n", "0", "true", NULL};
    const char *nx[] = {"-n", "abc", "true", NULL};
    const char *nneg[] = {"-n", "-2", "true", NULL};
    const char *nbig[] = {"-n", "100000", "true", NULL};
    const char *nmissing[] = {"-n", NULL};
    const char *nonly[] = {"true", NULL};
    const char *bogus[] = {"--bogus", "-n", "2", "true", NULL};
    const char *noprog[] = {"-n", "2", NULL};
    const char *noprog2[] = {"-n", "2", "--", NULL};
    const char *badms[] = {"-n", "2", "--timeout-ms", "soon", "true", NULL};
    const char *nsmany[] = {"-n", "1", "--netns", "a,b", "true", NULL};
    const char *nsempty[] = {"-n", "2", "--netns", "a,,b", "true", NULL};
    const char *nsslash[] = {"-n", "2", "--netns", "../x", "true", NULL};
    const char *nsabsent[] = {"-n", "1", "--netns", "pride-no-such-namespace", "true", NULL};
    expect_usage_error(n0);
    expect_usage_error(nx);
    expect_usage_error(nneg);
    expect_usage_error(nbig);
    expect_usage_error(nmissing);
    expect_usage_error(nonly);
    expect_usage_error(bogus);
    expect_usage_error(noprog);
    expect_usage_error(noprog2);
    expect_usage_error(badms);
    expect_usage_error(nsmany);
    expect_usage_error(nsempty);
    expect_usage_error(nsslash);
    expect_usage_error(nsabsent);
}

static void test_help(void **state)
{
    (void)state;
    const char *args[] = {"--help", NULL};
    struct tool_out r = tool_run(args);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.out, "usage: pride-run", 16);
    assert_string_equal(r.err, "");
    tool_free(&r);
}

static void test_cannot_execute(void **state)
{
    (void)state;
    const char *args[] = {"-n", "2", "/nonexistent/pride-program", NULL};
    struct tool_out r = tool_run(args);
    assert_int_equal(r.status, 127);
    assert_non_null(strstr(r.err, "cannot execute '/nonexistent/pride-program'"));
    tool_free(&r);
}

/* Arguments after PROGRAM belong to it, even ones that look like pride-run's. */
static void test_program_args_pass_through(void **state)
{
    (void)state;
    const char *args[] = {"-n", "1", "/bin/echo", "-n", "--help", NULL};
    struct tool_out r = tool_run(args);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "[0] --help\n");
    tool_free(&r);
}

/* An outside program that only calls pride_init(NULL, &ctx): one rank alone, and four
   ranks with distinct ranks 0..3 of 4. */
static void test_outside_program(void **state)
{
    (void)state;
    char hello[4096];
    snprintf(hello, sizeof hello, "%s/pride-hello", getenv("PRIDE_TOOLS_DIR"));
    const char *one[] = {"-n", "1", hello, NULL};
    struct tool_out r = tool_run(one);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "[0] rank 0 of 1"));
    tool_free(&r);
    const char *four[] = {"-n", "4", hello, NULL};
    r = tool_run(four);
    assert_int_equal(r.status, 0);
    for (int k = 0; k < 4; k++) {
        char want[64];
        snprintf(want, sizeof want, "[%d] rank %d of 4", k, k);
        assert_non_null(strstr(r.out, want));
    }
    assert_int_equal(count_all_lines(r.out), 4);
    tool_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefixes_output),
        cmocka_unit_test(test_lines_never_interleave),
        cmocka_unit_test(test_rank_env),
        cmocka_unit_test(test_store_option),
        cmocka_unit_test(test_failure_ends_others),
        cmocka_unit_test(test_failure_kills_stubborn),
        cmocka_unit_test(test_signal_status),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_cannot_execute),
        cmocka_unit_test(test_program_args_pass_through),
        cmocka_unit_test(test_outside_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
