/*
 * pride-perf end to end: the built binary (found through $PRIDE_TOOLS_DIR) runs as two
 * ranks under pride-run, with --check and --json. The printed table is parsed: the
 * column header must be perftest's, every row must hold exactly the numbers of its
 * columns, the #bytes rows must be the sizes asked for and #iterations the count
 * asked for, the times and rates positive and consistent with each other (t_min <=
 * median <= t_max, peak >= average, average = message rate x size). A bit flipped on
 * the wire (the faulty transport) must be counted as one wrong byte with exit 1.
 * Bad command lines, a job of the wrong size and ranks given different options must
 * exit 2 with a one-line reason; verbs without a device must fail with a sentence.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define PERF_MAX_ARGS 48
#define PERF_MAX_ROWS 32

static char perf_bin[4096], run_bin[4096];

struct perf_out {
    int status; /* exit code, or 128 + signal */
    char *out, *err;
};

static char *perf_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    assert_non_null(buf);
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

/* Run prog with args (NULL-terminated) and env entries NAME=VALUE (NULL-terminated or
   NULL), capturing stdout and stderr. */
static struct perf_out perf_exec(const char *prog, const char *const *args, const char *const *env)
{
    const char *argv[PERF_MAX_ARGS + 2] = {prog};
    int argc = 1;
    for (; args[argc - 1]; argc++) {
        assert_true(argc <= PERF_MAX_ARGS);
        argv[argc] = args[argc - 1];
    }
    argv[argc] = NULL;
    char outp[] = "/tmp/pride-perf-test-out-XXXXXX", errp[] = "/tmp/pride-perf-test-err-XXXXXX";
    int ofd = mkstemp(outp), efd = mkstemp(errp);
    assert_true(ofd >= 0 && efd >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(ofd, STDOUT_FILENO);
        dup2(efd, STDERR_FILENO);
        unsetenv("PRIDE_TRANSPORT");
        unsetenv("PRIDE_OFI_PROVIDER");
        unsetenv("PRIDE_VERBS_MODEL");
        unsetenv("PRIDE_FAULT");
        unsetenv("PRIDE_RANK");
        unsetenv("PRIDE_NRANKS");
        unsetenv("PRIDE_STORE");
        setenv("PRIDE_TIMEOUT_MS", "30000", 1);
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(prog, (char *const *)argv);
        _exit(126);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    close(ofd);
    close(efd);
    struct perf_out r = {.status = WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws)};
    r.out = perf_slurp(outp);
    r.err = perf_slurp(errp);
    unlink(outp);
    unlink(errp);
    return r;
}

/* pride-run -n nranks pride-perf args... */
static struct perf_out perf_run(int nranks, const char *const *args, const char *const *env)
{
    char n[16];
    snprintf(n, sizeof n, "%d", nranks);
    const char *all[PERF_MAX_ARGS + 1] = {"-n", n, perf_bin};
    int k = 3;
    for (int i = 0; args[i]; i++) {
        assert_true(k < PERF_MAX_ARGS);
        all[k++] = args[i];
    }
    all[k] = NULL;
    return perf_exec(run_bin, all, env);
}

static void perf_free(struct perf_out *r)
{
    free(r->out);
    free(r->err);
}

static int perf_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- the table ---------------------------------------------------------------------- */

static const char perf_bw_header[] =
    "#bytes #iterations BW peak[MB/sec] BW average[MB/sec] MsgRate[Mpps]";
static const char perf_lat_header[] =
    "#bytes #iterations t_min[usec] t_max[usec] t_typical[usec] t_avg[usec] t_stdev[usec] "
    "99% percentile[usec] 99.9% percentile[usec]";

struct perf_table {
    int rows;
    double v[PERF_MAX_ROWS][9];
};

/* Collapse runs of blanks into one and trim: "a  b " -> "a b". */
static void perf_squeeze(const char *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    int blank = 1;
    for (size_t i = 0; i < len && o + 1 < outlen; i++) {
        if (in[i] == ' ' || in[i] == '\t') {
            blank = 1;
            continue;
        }
        if (blank && o)
            out[o++] = ' ';
        blank = 0;
        out[o++] = in[i];
    }
    out[o] = '\0';
}

/* Rank 0's lines of pride-run's output: the column header must be exactly `header`,
   every later line a row of exactly ncols numbers. */
static struct perf_table perf_parse_table(const char *out, const char *header, int ncols)
{
    struct perf_table t = {0};
    int seen_header = 0;
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        if (len >= 4 && !memcmp(p, "[0] ", 4)) {
            perf_squeeze(p + 4, len - 4, line, sizeof line);
            if (line[0] == '#' && !strncmp(line, "#bytes", 6)) {
                assert_string_equal(line, header);
                seen_header++;
            } else if (line[0] != '#') {
                if (!seen_header)
                    fail_msg("row before the column header: %s", line);
                assert_true(t.rows < PERF_MAX_ROWS);
                char *q = line, *end;
                for (int c = 0; c < ncols; c++) {
                    errno = 0;
                    t.v[t.rows][c] = strtod(q, &end);
                    if (end == q || errno || !isfinite(t.v[t.rows][c]))
                        fail_msg("column %d of row '%s' is not a number", c + 1, line);
                    q = end;
                }
                if (*q)
                    fail_msg("row '%s' has more than %d columns", line, ncols);
                t.rows++;
            }
        }
        p += len + (nl != NULL);
    }
    assert_int_equal(seen_header, 1);
    return t;
}

/* Sizes first, first*2, ... last. */
static void perf_expect_rows(const struct perf_table *t, size_t first, size_t last, long iters)
{
    int r = 0;
    for (size_t s = first; s <= last; s *= 2, r++) {
        assert_true(r < t->rows);
        if (t->v[r][0] != (double)s)
            fail_msg("row %d: #bytes %.0f, want %zu", r, t->v[r][0], s);
        if (t->v[r][1] != (double)iters)
            fail_msg("row %d: #iterations %.0f, want %ld", r, t->v[r][1], iters);
    }
    assert_int_equal(t->rows, r);
}

/* A number after "key": in the JSON text of row `row` (rows are one per line). */
static double perf_json(const char *json, int row, const char *key)
{
    const char *p = json;
    for (int r = 0; r <= row; r++) {
        p = strstr(p, "{\"test\"");
        assert_non_null(p);
        if (r < row)
            p++;
    }
    const char *eol = strchr(p, '}');
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *q = strstr(p, k);
    if (!q || q > eol)
        fail_msg("row %d of the JSON has no %s", row, key);
    return strtod(q + strlen(k), NULL);
}

static char *perf_tmpjson(char *path)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    return path;
}

/* bw over the job's transport, --check, sizes first..last (one size, or -a). */
static void perf_bw_case(const char *const *env, const char *const *extra, size_t first,
                         size_t last, long iters, int bidir)
{
    char json[] = "/tmp/pride-perf-json-XXXXXX";
    char n[32], s[32];
    snprintf(n, sizeof n, "%ld", iters);
    snprintf(s, sizeof s, "%zu", first);
    const char *args[PERF_MAX_ARGS] = {
        "-t", "bw", "-n", n, "--check", "--json", perf_tmpjson(json)};
    int k = 7;
    if (first == last) {
        args[k++] = "-s";
        args[k++] = s;
    } else {
        args[k++] = "-a";
    }
    if (bidir)
        args[k++] = "--bidir";
    for (int i = 0; extra && extra[i]; i++)
        args[k++] = extra[i];
    args[k] = NULL;
    struct perf_out r = perf_run(2, args, env);
    if (r.status != 0)
        fail_msg("pride-perf bw exited %d: %s", r.status, r.err);
    struct perf_table t = perf_parse_table(r.out, perf_bw_header, 5);
    perf_expect_rows(&t, first, last, iters);
    char *js = perf_slurp(json);
    unlink(json);
    for (int i = 0; i < t.rows; i++) {
        double peak = perf_json(js, i, "bw_peak_MBps"), avg = perf_json(js, i, "bw_average_MBps");
        double rate = perf_json(js, i, "msg_rate_Mpps"), bytes = perf_json(js, i, "bytes");
        assert_true(peak > 0 && avg > 0 && rate > 0);
        if (peak < avg * (1 - 1e-9))
            fail_msg("%.0f bytes: BW peak %g below BW average %g", bytes, peak, avg);
        /* MB/s = Mpps x bytes (x 2 messages per iteration both ways) */
        double want = rate * bytes;
        if (fabs(avg - want) > 1e-6 * want)
            fail_msg("%.0f bytes: BW average %g is not MsgRate x size = %g", bytes, avg, want);
        assert_true(perf_json(js, i, "iterations") == (double)iters);
        assert_true(perf_json(js, i, "wrong") == 0);
        /* the table agrees with the JSON to its printed precision */
        assert_true(fabs(t.v[i][3] - avg) <= 0.005 + 1e-9 * avg);
        assert_true(fabs(t.v[i][2] - peak) <= 0.005 + 1e-9 * peak);
        assert_true(t.v[i][2] >= 0 && t.v[i][3] >= 0 && t.v[i][4] >= 0);
    }
    assert_int_equal(perf_lines(r.err), 0);
    free(js);
    perf_free(&r);
}

static void perf_lat_case(const char *const *env, const char *const *extra, size_t first,
                          size_t last, long iters)
{
    char json[] = "/tmp/pride-perf-json-XXXXXX";
    char n[32], s[32];
    snprintf(n, sizeof n, "%ld", iters);
    snprintf(s, sizeof s, "%zu", first);
    const char *args[PERF_MAX_ARGS] = {
        "-t", "lat", "-n", n, "--check", "--json", perf_tmpjson(json)};
    int k = 7;
    if (first == last) {
        args[k++] = "-s";
        args[k++] = s;
    } else {
        args[k++] = "-a";
    }
    for (int i = 0; extra && extra[i]; i++)
        args[k++] = extra[i];
    args[k] = NULL;
    struct perf_out r = perf_run(2, args, env);
    if (r.status != 0)
        fail_msg("pride-perf lat exited %d: %s", r.status, r.err);
    struct perf_table t = perf_parse_table(r.out, perf_lat_header, 9);
    perf_expect_rows(&t, first, last, iters);
    char *js = perf_slurp(json);
    unlink(json);
    for (int i = 0; i < t.rows; i++) {
        static const char *const keys[] = {"t_min_us",   "t_max_us", "t_typical_us", "t_avg_us",
                                           "t_stdev_us", "t_p99_us", "t_p999_us"};
        double v[7];
        for (int c = 0; c < 7; c++) {
            v[c] = perf_json(js, i, keys[c]);
            assert_true(fabs(t.v[i][2 + c] - v[c]) <= 0.005 + 1e-9 * v[c]);
        }
        double tmin = v[0], tmax = v[1], typ = v[2], avg = v[3], sd = v[4], p99 = v[5], p999 = v[6];
        if (!(tmin > 0 && tmin <= typ && typ <= tmax && tmin <= avg && avg <= tmax && sd >= 0 &&
              sd <= tmax - tmin && typ <= p99 + 1e-9 && p99 <= p999 && p999 <= tmax))
            fail_msg("row %d: inconsistent times min %g typ %g avg %g max %g sd %g p99 %g "
                     "p99.9 %g",
                     i, tmin, typ, avg, tmax, sd, p99, p999);
        assert_true(perf_json(js, i, "wrong") == 0);
    }
    assert_int_equal(perf_lines(r.err), 0);
    free(js);
    perf_free(&r);
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_help_exit_0(void **state)
{
    (void)state;
    struct perf_out r = perf_exec(perf_bin, (const char *[]){"--help", NULL}, NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "MB = 1e6 bytes"));
    assert_non_null(strstr(r.out, "--transport"));
    perf_free(&r);
}

static void test_bad_flags_exit_2(void **state)
{
    (void)state;
    static const char *const cases[][5] = {
        {"-t", "bandwidth", NULL},
        {"-s", "0", NULL},
        {"-s", "1X", NULL},
        {"-s", "2G", NULL},
        {"-s", "-4", NULL},
        {"-s", "8", "-a", NULL},
        {"-n", "0", NULL},
        {"-n", "x", NULL},
        {"-w", "-1", NULL},
        {"--window", "0", NULL},
        {"-t", "lat", "--window", "8", NULL},
        {"-t", "lat", "--bidir", NULL},
        {"--transport", "udp", NULL},
        {"--transport", "tcp", "--provider", "shm", NULL},
        {"--provider", "", NULL},
        {"--bogus", NULL},
        {"-z", NULL},
        {"-n", NULL},
        {"--json", NULL},
        {"stray", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct perf_out r = perf_exec(perf_bin, cases[i], NULL);
        if (r.status != 2 || perf_lines(r.err) != 1 || strncmp(r.err, "pride-perf: ", 12))
            fail_msg("%s %s: exit %d, stderr '%s' (want 2 and one line)", cases[i][0],
                     cases[i][1] ? cases[i][1] : "", r.status, r.err);
        assert_int_equal(r.out[0], '\0');
        perf_free(&r);
    }
}

static void test_wrong_rank_count_exit_2(void **state)
{
    (void)state;
    struct perf_out r = perf_exec(perf_bin, (const char *[]){"-n", "5", NULL}, NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "needs exactly 2 ranks"));
    assert_non_null(strstr(r.err, "has 1"));
    perf_free(&r);
    r = perf_run(3, (const char *[]){"-n", "5", NULL}, NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "[0] pride-perf: needs exactly 2 ranks"));
    assert_non_null(strstr(r.err, "has 3"));
    assert_null(strstr(r.out, "#bytes"));
    perf_free(&r);
}

/* Rank 1 asks for other iterations than rank 0: both stop with 2 before measuring. */
static void test_ranks_disagree_exit_2(void **state)
{
    (void)state;
    char script[8192];
    snprintf(script, sizeof script, "exec '%s' -n $((10 + PRIDE_RANK))", perf_bin);
    const char *args[] = {"-n", "2", "/bin/sh", "-c", script, NULL};
    struct perf_out r = perf_exec(run_bin, args, NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "different options"));
    assert_null(strstr(r.out, "#bytes"));
    perf_free(&r);
}

static void test_tcp_bw(void **state)
{
    (void)state;
    perf_bw_case(NULL, NULL, 2, 8u << 20, 16, 0); /* -a: one round per size */
    perf_bw_case(NULL, NULL, 4096, 4096, 256, 0); /* 4 full rounds of 64 */
    perf_bw_case(NULL, (const char *[]){"--window", "32", NULL}, 65536, 65536, 96, 1);
    perf_bw_case(NULL, (const char *[]){"--window", "4", "-w", "0", NULL}, 1000, 1000, 12, 0);
}

static void test_tcp_lat(void **state)
{
    (void)state;
    perf_lat_case(NULL, (const char *[]){"-w", "3", NULL}, 2, 8u << 20, 20);
    perf_lat_case(NULL, NULL, 100, 100, 1000);
}

/* One bit flipped on the wire (the faulty transport, rank 0's byte 100000: inside the
   payload of its second 64 KiB message) is one wrong byte, and exit 1; without
   --check the same run passes, so it is --check that sees it. */
static void test_check_counts_wrong_bytes(void **state)
{
    (void)state;
    const char *env[] = {"PRIDE_TRANSPORT=faulty", "PRIDE_FAULT=corrupt_byte=100000",
                         "PRIDE_FAULT_RANK=0", NULL};
    static const char *const tests[] = {"bw", "lat"};
    for (int i = 0; i < 2; i++) {
        char json[] = "/tmp/pride-perf-json-XXXXXX";
        const char *args[] = {
            "-t",     tests[i],           "-s", "64K", "-n", "8", "-w", "2", "--check",
            "--json", perf_tmpjson(json), NULL};
        struct perf_out r = perf_run(2, args, env);
        if (r.status != 1 || !strstr(r.err, "[0] pride-perf: 65536 bytes: 1 wrong bytes"))
            fail_msg("%s with a flipped bit: exit %d, stderr '%s'", tests[i], r.status, r.err);
        char *js = perf_slurp(json);
        unlink(json);
        assert_true(perf_json(js, 0, "wrong") == 1);
        free(js);
        perf_free(&r);
        args[8] = NULL; /* no --check */
        r = perf_run(2, args, env);
        assert_int_equal(r.status, 0);
        perf_free(&r);
    }
}

static void test_ofi_tcp_rxm(void **state)
{
    (void)state;
#ifdef PRIDE_HAVE_OFI
    const char *env[] = {"PRIDE_OFI_PROVIDER=tcp;ofi_rxm", NULL};
    const char *ofi[] = {"--transport", "ofi", NULL};
    perf_bw_case(env, ofi, 2, 8u << 20, 16, 0);
    perf_bw_case(env, ofi, 65536, 65536, 128, 1);
    perf_lat_case(env, ofi, 2, 8u << 20, 10);
    /* --provider sets the same variable */
    perf_lat_case(NULL, (const char *[]){"--transport", "ofi", "--provider", "tcp;ofi_rxm", NULL},
                  8, 8, 200);
#else
    printf("pride was built without libfabric (no ofi backend): nothing to run\n");
    skip();
#endif
}

/* verbs: with no RDMA device a sentence and exit 1 (never a crash); on the software
   model of the verbs calls (docs/verbs.md) the same checks as tcp. */
static void test_verbs(void **state)
{
    (void)state;
#ifdef PRIDE_HAVE_VERBS
    struct stat st;
    if (stat("/sys/class/infiniband", &st) == 0) {
        printf("this host has an RDMA device class: the no-device case cannot be tested\n");
    } else {
        struct perf_out r = perf_run(2, (const char *[]){"--transport", "verbs", NULL}, NULL);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err, "no RDMA device"));
        assert_non_null(strstr(r.err, "pride-perf: cannot start the verbs transport"));
        assert_null(strstr(r.out, "#bytes"));
        perf_free(&r);
    }
    char dir[] = "/tmp/pride-perf-verbs-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char model[64];
    snprintf(model, sizeof model, "PRIDE_VERBS_MODEL=%s", dir);
    const char *env[] = {model, NULL};
    const char *verbs[] = {"--transport", "verbs", NULL};
    /* Small volumes: the model is slow. 64 rendezvous messages (> 8 KiB) outstanding
       each way once stalled the backend: both ranks out of credits, each with a
       queued RTS or CTS, and neither sent the CREDIT message that would free the
       other (peer_flush gave up before it). */
    perf_bw_case(env, verbs, 4096, 4096, 128, 0); /* eager path */
    perf_bw_case(env, verbs, 16384, 16384, 64, 1);
    perf_bw_case(env, (const char *[]){"--transport", "verbs", "--window", "8", NULL}, 65536, 65536,
                 32, 0);
    perf_bw_case(env, (const char *[]){"--transport", "verbs", "--window", "4", NULL}, 1u << 20,
                 1u << 20, 8, 1);
    perf_lat_case(env, verbs, 8, 8, 100);
    perf_lat_case(env, verbs, 65536, 65536, 20);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
#else
    struct perf_out r = perf_run(2, (const char *[]){"--transport", "verbs", NULL}, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "not built in"));
    perf_free(&r);
#endif
}

int main(void)
{
    const char *dir = getenv("PRIDE_TOOLS_DIR");
    if (!dir) {
        fprintf(stderr, "PRIDE_TOOLS_DIR is not set (ctest sets it to the build directory)\n");
        return 1;
    }
    snprintf(perf_bin, sizeof perf_bin, "%s/pride-perf", dir);
    snprintf(run_bin, sizeof run_bin, "%s/pride-run", dir);
    if (access(perf_bin, X_OK) || access(run_bin, X_OK)) {
        fprintf(stderr, "%s or %s: %s\n", perf_bin, run_bin, strerror(errno));
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_exit_0),
        cmocka_unit_test(test_bad_flags_exit_2),
        cmocka_unit_test(test_wrong_rank_count_exit_2),
        cmocka_unit_test(test_ranks_disagree_exit_2),
        cmocka_unit_test(test_tcp_bw),
        cmocka_unit_test(test_tcp_lat),
        cmocka_unit_test(test_check_counts_wrong_bytes),
        cmocka_unit_test(test_ofi_tcp_rxm),
        cmocka_unit_test(test_verbs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
