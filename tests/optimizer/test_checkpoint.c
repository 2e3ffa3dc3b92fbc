/*
 * Checkpoints: a save / load round trip restores the state exactly (continuing after
 * a load gives the same bytes as continuing without one, including AdamW's second
 * moment, Lion Cub's exp schedule and a learning rate set by pride_optim_set_lr), and
 * truncated, extended, corrupted, other-rank and other-configuration files are refused
 * with a clear sentence, leaving the optimizer untouched.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "optimtest.h"

#define N 300
static const pride_tensor_t layout[2] = {{"a", 0, 200}, {"b", 200, 100}};

static void init_params(float *x)
{
    for (size_t i = 0; i < N; i++)
        x[i] = 0.001f * (float)i - 0.1f;
}

static void grads(float *g, int rank, int step)
{
    for (size_t i = 0; i < N; i++)
        g[i] = sinf((float)i * 0.37f + (float)step * 1.3f + (float)rank * 0.7f);
}

static pride_optim_t *make(pride_context_t *ctx, const char *algo, const char *quant,
                           const char *sync, float lr, float *x, const pride_tensor_t *t, size_t nt)
{
    pride_optim_config_t c = optimtest_config(algo, quant, sync, lr, 0.1f);
    pride_optim_t *o = NULL;
    HCHECK_OK(ctx, pride_optim_create(ctx, &c, x, N, t, nt, &o));
    return o;
}

static void steps(pride_optim_t *o, int rank, int from, int to)
{
    float g[N];
    for (int s = from; s < to; s++) {
        grads(g, rank, s);
        HCHECK_OK(NULL, pride_optim_step(o, g));
    }
}

struct rt_arg {
    const char *algo, *quant, *sync, *dir;
};

static int run_round_trip(pride_context_t *ctx, int rank, int P, void *arg)
{
    const struct rt_arg *a = arg;
    char path[256], other[256];
    snprintf(path, sizeof path, "%s/%s.%d", a->dir, a->algo, rank);
    snprintf(other, sizeof other, "%s/%s.%d", a->dir, a->algo, (rank + 1) % P);
    float x[N], x_saved[N], m_saved[N], x_final[N], m_final[N], v_final[N];
    init_params(x);
    pride_optim_t *o = make(ctx, a->algo, a->quant, a->sync, 0.01f, x, layout, 2);
    steps(o, rank, 0, 5);
    HCHECK_OK(ctx, pride_optim_set_lr(o, 0.005f));
    HCHECK_OK(ctx, pride_optim_save(o, path));
    memcpy(x_saved, x, sizeof x);
    memcpy(m_saved, o->m, sizeof m_saved);
    steps(o, rank, 5, 12);
    memcpy(x_final, x, sizeof x);
    memcpy(m_final, o->m, sizeof m_final);
    if (o->v)
        memcpy(v_final, o->v, sizeof v_final);
    pride_optim_stats_t s = PRIDE_OPTIM_STATS_INIT;
    HCHECK_OK(ctx, pride_optim_stats(o, &s));
    HCHECK(s.steps == 12);

    /* load into the same optimizer: back to step 5 (and lr 0.005) exactly */
    HCHECK_OK(ctx, pride_optim_set_lr(o, 0.003f));
    HCHECK_OK(ctx, pride_optim_load(o, path));
    HCHECK(o->lr == 0.005f);
    HCHECK(memcmp(x, x_saved, sizeof x) == 0 && memcmp(o->m, m_saved, sizeof m_saved) == 0);
    HCHECK_OK(ctx, pride_optim_stats(o, &s));
    HCHECK(s.steps == 5);
    steps(o, rank, 5, 12);
    HCHECK(memcmp(x, x_final, sizeof x) == 0 && memcmp(o->m, m_final, sizeof m_final) == 0);

    /* a fresh optimizer (a restarted job) resumes to the same bytes */
    float y[N];
    init_params(y);
    pride_optim_t *o2 = make(ctx, a->algo, a->quant, a->sync, 0.01f, y, layout, 2);
    HCHECK_OK(ctx, pride_optim_load(o2, path));
    steps(o2, rank, 5, 12);
    HCHECK(memcmp(y, x_final, sizeof y) == 0 && memcmp(o2->m, m_final, sizeof m_final) == 0);
    if (o2->v)
        HCHECK(memcmp(o2->v, v_final, sizeof v_final) == 0);
    HCHECK(optimtest_same_everywhere(ctx, y, sizeof y));

    /* another rank's file is refused */
    HCHECK_OK(ctx, pride_barrier(ctx));
    memcpy(x_saved, y, sizeof y);
    HCHECK(pride_optim_load(o2, other) == PRIDE_ERR_INVALID);
    HCHECK(strstr(pride_last_error(ctx), "each rank loads the file it saved"));
    HCHECK(memcmp(y, x_saved, sizeof y) == 0);
    pride_optim_destroy(o);
    pride_optim_destroy(o2);
    return 0;
}

static char *make_dir(void)
{
    static char dir[64];
    strcpy(dir, "/tmp/pride-ckpt-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    const struct rt_arg cases[] = {
        {"global-adamw", NULL, NULL, NULL},
        {"lioncub", "l1", "exp:1", NULL},
        {"lioncub", "sign1", "selective", NULL},
        {"dlion-avg", NULL, NULL, NULL},
    };
    char *dir = make_dir();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rt_arg a = cases[i];
        a.dir = dir;
        assert_int_equal(harness_run(2, run_round_trip, &a, NULL), 0);
    }
    remove_dir(dir);
}

static size_t file_size(const char *p)
{
    struct stat sb;
    HCHECK(stat(p, &sb) == 0);
    return (size_t)sb.st_size;
}

static void copy_file(const char *from, const char *to, size_t keep)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    HCHECK(in && out);
    char buf[4096];
    size_t left = keep, got;
    while (left > 0 && (got = fread(buf, 1, left < sizeof buf ? left : sizeof buf, in)) > 0) {
        HCHECK(fwrite(buf, 1, got, out) == got);
        left -= got;
    }
    fclose(in);
    fclose(out);
}

static void flip_byte(const char *p, size_t at)
{
    int fd = open(p, O_RDWR);
    HCHECK(fd >= 0);
    unsigned char b;
    HCHECK(pread(fd, &b, 1, (off_t)at) == 1);
    b ^= 0x10;
    HCHECK(pwrite(fd, &b, 1, (off_t)at) == 1);
    close(fd);
}

/* Load must fail with status st and a sentence containing needle, changing nothing. */
static void refused(pride_context_t *ctx, pride_optim_t *o, const float *x, const char *path,
                    int st, const char *needle)
{
    float before[N], m_before[N];
    memcpy(before, x, sizeof before);
    memcpy(m_before, o->m, sizeof m_before);
    pride_optim_stats_t s0 = PRIDE_OPTIM_STATS_INIT, s1 = PRIDE_OPTIM_STATS_INIT;
    HCHECK_OK(ctx, pride_optim_stats(o, &s0));
    int got = pride_optim_load(o, path);
    const char *why = pride_last_error(ctx);
    if (got != st || !strstr(why, needle) || !strstr(why, path)) {
        fprintf(stderr, "load %s: %s (%s), wanted %s with '%s'\n", path, pride_strerror(got), why,
                pride_strerror(st), needle);
        _exit(1);
    }
    HCHECK_OK(ctx, pride_optim_stats(o, &s1));
    HCHECK(memcmp(before, x, sizeof before) == 0 && memcmp(m_before, o->m, sizeof m_before) == 0);
    HCHECK(s0.steps == s1.steps);
}

static int run_refusals(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P;
    const char *dir = arg;
    char good[256], bad[256];
    snprintf(good, sizeof good, "%s/lion.ckpt", dir);
    snprintf(bad, sizeof bad, "%s/bad.ckpt", dir);
    float x[N];
    init_params(x);
    pride_optim_t *o = make(ctx, "lion", NULL, NULL, 0.01f, x, layout, 2);
    steps(o, rank, 0, 3);
    HCHECK_OK(ctx, pride_optim_save(o, good));
    steps(o, rank, 3, 4);
    size_t size = file_size(good);
    HCHECK(size == 176 + 2 * N * sizeof(float) + 4);

    refused(ctx, o, x, "/nonexistent-dir/none.ckpt", PRIDE_ERR_IO, "cannot open");
    const size_t cuts[] = {0, 100, 175, 176, 176 + 10, size - 4, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        copy_file(good, bad, cuts[i]);
        refused(ctx, o, x, bad, PRIDE_ERR_IO, "truncated");
    }
    copy_file(good, bad, size);
    FILE *f = fopen(bad, "ab");
    HCHECK(f && fputc('x', f) != EOF && fclose(f) == 0);
    refused(ctx, o, x, bad, PRIDE_ERR_IO, "too long");

    const struct {
        size_t at;
        const char *why;
    } flips[] = {{0, "bad magic"},        {9, "format version"},   {20, "header is damaged"},
                 {130, "header is damaged"}, {175, "header is damaged"}, {176, "data is damaged"},
                 {700, "data is damaged"},   {size - 1, "data is damaged"}};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        copy_file(good, bad, size);
        flip_byte(bad, flips[i].at);
        refused(ctx, o, x, bad, PRIDE_ERR_IO, flips[i].why);
    }
    copy_file(good, bad, size);
    HCHECK_OK(ctx, pride_optim_load(o, bad)); /* the copy itself is fine */

    /* other configurations */
    float y[N];
    init_params(y);
    pride_optim_config_t c = optimtest_config("lion", NULL, NULL, 0.01f, 0.2f);
    pride_optim_t *p = NULL;
    HCHECK_OK(ctx, pride_optim_create(ctx, &c, y, N, layout, 2, &p));
    refused(ctx, p, y, good, PRIDE_ERR_INVALID, "written with wd 0.1");
    pride_optim_destroy(p);
    /* the learning rate is state (schedules change it): restored, not refused */
    p = make(ctx, "lion", NULL, NULL, 0.02f, y, layout, 2);
    HCHECK_OK(ctx, pride_optim_load(p, good));
    HCHECK(p->lr == 0.01f);
    pride_optim_destroy(p);
    p = make(ctx, "adamw", NULL, NULL, 0.01f, y, layout, 2);
    refused(ctx, p, y, good, PRIDE_ERR_INVALID, "written by lion");
    pride_optim_destroy(p);
    p = make(ctx, "lioncub", "l1", "every:4", 0.01f, y, layout, 2);
    refused(ctx, p, y, good, PRIDE_ERR_INVALID, "written by lion");
    pride_optim_destroy(p);
    const pride_tensor_t split[3] = {{"a", 0, 100}, {"a2", 100, 100}, {"b", 200, 100}};
    p = make(ctx, "lion", NULL, NULL, 0.01f, y, split, 3);
    refused(ctx, p, y, good, PRIDE_ERR_INVALID, "another layout");
    pride_optim_destroy(p);
    const pride_tensor_t renamed[2] = {{"a", 0, 200}, {"c", 200, 100}};
    p = make(ctx, "lion", NULL, NULL, 0.01f, y, renamed, 2);
    refused(ctx, p, y, good, PRIDE_ERR_INVALID, "another layout");
    pride_optim_destroy(p);

    /* saving where it cannot */
    HCHECK(pride_optim_save(o, "/nonexistent-dir/x.ckpt") == PRIDE_ERR_IO);
    HCHECK(strstr(pride_last_error(ctx), "/nonexistent-dir/x.ckpt"));
    HCHECK(pride_optim_save(o, "") == PRIDE_ERR_INVALID);
    HCHECK(pride_optim_load(o, NULL) == PRIDE_ERR_INVALID);
    pride_optim_destroy(o);
    return 0;
}

static void test_refusals(void **state)
{
    (void)state;
    char *dir = make_dir();
    assert_int_equal(harness_run(1, run_refusals, dir, NULL), 0);
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
