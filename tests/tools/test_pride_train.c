/*
 * pride-train end to end, as a real program from $PRIDE_TOOLS_DIR, on a small
 * synthetic dataset written in Fashion-MNIST's IDX format (uncompressed: zlib's gzread
 * reads plain files as they are), so the test never needs the real dataset and trains
 * for about a hundred steps: 2 ranks under pride-run learn the easy task, the CSV has
 * the exact header and one row per epoch (plus a fractional row when --max-steps cuts
 * an epoch), and a missing dataset, a bad flag and a bad optimizer name fail with a
 * one-line reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static void put_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    assert_int_equal(fwrite(b, 1, 4, f), 4);
}

/* Class c lights a 7x7 block at one of ten positions, over faint noise. */
static void write_split(const char *split, uint32_t n, uint64_t seed)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, split);
    FILE *img = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    FILE *lab = fopen(path, "wb");
    assert_non_null(img);
    assert_non_null(lab);
    put_be32(img, 0x803);
    put_be32(img, n);
    put_be32(img, 28);
    put_be32(img, 28);
    put_be32(lab, 0x801);
    put_be32(lab, n);
    for (uint32_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned c = (unsigned)(seed >> 33) % 10;
        unsigned char px[784];
        for (int p = 0; p < 784; p++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            px[p] = (unsigned char)((seed >> 40) % 40);
        }
        int r0 = (int)(c / 5) * 14 + 3, c0 = (int)(c % 5) * 5 + 1;
        for (int r = r0; r < r0 + 7; r++)
            for (int k = c0; k < c0 + 5; k++)
                px[r * 28 + k] = 230;
        assert_int_equal(fwrite(px, 1, 784, img), 784);
        assert_int_equal(fputc((int)c, lab), (int)c);
    }
    fclose(img);
    fclose(lab);
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/pride-train-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    write_split("train", 2000, 1);
    write_split("t10k", 400, 2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    char *buf = calloc(1, 1 << 16);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Run "sh -c CMD" with stdout and stderr in files of the test directory; returns the
   exit status and fills out / err (to free). */
static int run(const char *cmd, char **out, char **err)
{
    const char *tools = getenv("PRIDE_TOOLS_DIR");
    if (!tools)
        fail_msg("PRIDE_TOOLS_DIR is not set (ctest sets it to the build directory)");
    char *full = malloc(8192);
    assert_non_null(full);
    snprintf(full, 8192, "cd %s && T=%s && %s >out.txt 2>err.txt", dir, tools, cmd);
    int st = system(full);
    free(full);
    char path[128];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    *out = slurp(path);
    snprintf(path, sizeof path, "%s/err.txt", dir);
    *err = slurp(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_trains(void **state)
{
    (void)state;
    char *out, *err;
    /* 2000 images / (16 x 2) = 62 steps per epoch, two epochs */
    int st = run("$T/pride-run -n 2 $T/pride-train --data . --optimizer lioncub --quant l1 "
                 "--momentum-sync every:5 --lr 3e-3 --batch 16 --width 32 --depth 1 --epochs 2 "
                 "--csv run.csv", &out, &err);
    if (st != 0)
        fail_msg("pride-train exited %d: %s%s", st, out, err);
    char path[128];
    snprintf(path, sizeof path, "%s/run.csv", dir);
    char *csv = slurp(path);
    const char *header = "epoch,loss,test_acc,bytes_sent,comm_s,step_s\n";
    assert_memory_equal(csv, header, strlen(header));
    int rows = 0;
    double last_acc = 0;
    for (char *line = strchr(csv, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        double epoch, loss, acc, comm, step_s;
        unsigned long long bytes;
        assert_int_equal(sscanf(line + 1, "%lf,%lf,%lf,%llu,%lf,%lf", &epoch, &loss, &acc,
                                &bytes, &comm, &step_s), 6);
        rows++;
        assert_true(epoch == rows);
        assert_true(loss > 0 && acc >= 0 && acc <= 1 && bytes > 0 && comm >= 0 && step_s > 0);
        last_acc = acc;
    }
    assert_int_equal(rows, 2);
    if (last_acc < 0.9)
        fail_msg("the synthetic task should be learned: test_acc %g\n%s", last_acc, out);
    assert_non_null(strstr(out, "[0] epoch 2:"));
    free(csv);
    free(out);
    free(err);
}

static void test_max_steps(void **state)
{
    (void)state;
    char *out, *err;
    /* one rank, batch 50: 40 steps per epoch; 50 steps end a quarter into epoch 2 */
    int st = run("$T/pride-train --data . --optimizer global-adamw --batch 50 --width 16 "
                 "--depth 2 --epochs 5 --max-steps 50 --csv cut.csv", &out, &err);
    if (st != 0)
        fail_msg("pride-train exited %d: %s%s", st, out, err);
    char path[128];
    snprintf(path, sizeof path, "%s/cut.csv", dir);
    char *csv = slurp(path);
    assert_non_null(strstr(csv, "\n1,"));
    assert_non_null(strstr(csv, "\n1.25,"));
    assert_null(strstr(csv, "\n2,"));
    free(csv);
    free(out);
    free(err);
}

static void test_errors(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_not_equal(run("$T/pride-train --data ./nowhere", &out, &err), 0);
    assert_non_null(strstr(err, "dataset-fashion-mnist"));
    assert_non_null(strstr(err, "nowhere/train-images-idx3-ubyte.gz"));
    free(out);
    free(err);
    assert_int_equal(run("$T/pride-train --batch 0", &out, &err), 2);
    assert_non_null(strstr(err, "--batch"));
    free(out);
    free(err);
    assert_int_equal(run("$T/pride-train --frobnicate 1", &out, &err), 2);
    assert_non_null(strstr(err, "--frobnicate"));
    free(out);
    free(err);
    assert_int_not_equal(run("$T/pride-train --data . --optimizer sgd", &out, &err), 0);
    assert_non_null(strstr(err, "unknown algorithm 'sgd'"));
    free(out);
    free(err);
    assert_int_not_equal(run("$T/pride-train --data . --optimizer adamw --quant l1", &out, &err),
                         0);
    assert_non_null(strstr(err, "applies to lioncub only"));
    free(out);
    free(err);
    assert_int_equal(run("$T/pride-train --help", &out, &err), 0);
    assert_non_null(strstr(out, "--momentum-sync"));
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trains),
        cmocka_unit_test(test_max_steps),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
