/*
 * Faults injected under the tcp transport (transport "faulty", PRIDE_FAULT) and frame
 * checksums (PRIDE_CHECKSUM=crc32c), under point-to-point exchanges and then
 * allreduces: every run ends in the right data or in an error
 * on every rank, never in wrong data and never in a hang. A corrupted byte anywhere
 * in a checksummed frame (header, payload, trailer) is reported as a checksum
 * mismatch naming the sender; a context that failed keeps failing at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "rel.h"

enum { MUST_PASS, MUST_FAIL, EITHER };

/* Every rank ends with the right data or an error; with MUST_PASS every rank passes,
   with MUST_FAIL rank fail_rank fails (saying said, when given). */
struct run {
    size_t count;
    int rounds;
    int expect;
    int fail_rank;
    const char *said;
};

/* Allreduces of count words, checked against the closed form (REL_WRONG if not). */
static int allreduce_rounds(pride_context_t *ctx, size_t count, int rounds)
{
    int n = pride_nranks(ctx), me = pride_rank(ctx), st = PRIDE_OK;
    uint32_t *v = malloc((count ? count : 1) * sizeof *v);
    if (!v)
        return PRIDE_ERR_NOMEM;
    for (int round = 0; round < rounds && st == PRIDE_OK; round++) {
        for (size_t i = 0; i < count; i++)
            v[i] = rel_word(me, round, i);
        st = pride_allreduce(ctx, v, v, count, PRIDE_UINT32, PRIDE_SUM);
        for (size_t i = 0; i < count && st == PRIDE_OK; i++) {
            uint32_t want = 0;
            for (int p = 0; p < n; p++)
                want += rel_word(p, round, i);
            if (v[i] != want)
                st = REL_WRONG;
        }
    }
    free(v);
    return st;
}

static int run_rank(pride_context_t *ctx, int rank, int n, void *arg)
{
    (void)n;
    const struct run *r = arg;
    int st = rel_check_sum(ctx, r->count, r->rounds);
    if (st == PRIDE_OK)
        st = allreduce_rounds(ctx, r->count, r->rounds);
    if (st != PRIDE_OK)
        fprintf(stderr, "rank %d: %s: %s\n", rank, pride_strerror(st), pride_last_error(ctx));
    HCHECK(st != REL_WRONG);
    HCHECK(r->expect != MUST_PASS || st == PRIDE_OK);
    HCHECK_STATUS(ctx, st, st == PRIDE_OK || st == PRIDE_ERR_PEER || st == PRIDE_ERR_TIMEOUT);
    if (r->expect == MUST_FAIL && rank == r->fail_rank) {
        HCHECK(st != PRIDE_OK);
        HCHECK(!r->said || strstr(pride_last_error(ctx), r->said));
    }
    if (st != PRIDE_OK)
        HCHECK(rel_check_sum(ctx, 1, 1) == st); /* the context stays failed */
    return 0;
}

static void run(const char *fault, const char *fault_rank, const char *checksum, struct run r)
{
    if (fault)
        setenv("PRIDE_FAULT", fault, 1);
    else
        unsetenv("PRIDE_FAULT");
    setenv("PRIDE_FAULT_RANK", fault_rank, 1);
    if (checksum)
        setenv("PRIDE_CHECKSUM", checksum, 1);
    else
        unsetenv("PRIDE_CHECKSUM");
    struct harness_opts o = {.timeout_ms = 5000, .guard_s = 60, .transport = "faulty"};
    int fails = harness_run(3, run_rank, &r, &o);
    if (fails)
        fprintf(stderr, "PRIDE_FAULT=%s on rank %s, PRIDE_CHECKSUM=%s: %d ranks failed\n",
                fault ? fault : "", fault_rank, checksum ? checksum : "", fails);
    assert_int_equal(fails, 0);
}

static void test_checksum_clean(void **state)
{
    (void)state;
    static const size_t counts[] = {0, 1, 1023, 1 << 18};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        run(NULL, "0", "crc32c", (struct run){counts[i], 3, MUST_PASS, -1, NULL});
}

static void test_checksum_catches_corruption(void **state)
{
    (void)state;
    /* rank 1's first frame goes to rank 0: 48 header bytes, 4000 payload, 4 trailer */
    static const long offsets[] = {0, 10, 20, 47, 48, 148, 4047, 4048, 4051};
    char f[64];
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        snprintf(f, sizeof f, "corrupt_byte=%ld", offsets[i]);
        run(f, "1", "crc32c", (struct run){1000, 1, MUST_FAIL, 0, "checksum mismatch from rank 1"});
    }
    /* somewhere in the middle of large frames, with short reads and writes too */
    run("corrupt_byte=3000000", "2", "crc32c",
        (struct run){1 << 20, 2, MUST_FAIL, 0, "checksum mismatch from rank 2"});
    run("corrupt_byte=777,short_io", "1", "crc32c",
        (struct run){1000, 1, MUST_FAIL, 0, "checksum mismatch from rank 1"});
    /* past the 8104 bytes of the exchange: in an allreduce's frames; whoever receives
       the byte fails, nobody gets wrong data */
    static const long later[] = {8104, 8114, 8160, 8700, 9500};
    for (size_t i = 0; i < sizeof later / sizeof later[0]; i++) {
        snprintf(f, sizeof f, "corrupt_byte=%ld", later[i]);
        run(f, "1", "crc32c", (struct run){1000, 1, EITHER, -1, NULL});
    }
    run("corrupt_byte=5000000", "0", "crc32c", (struct run){1 << 18, 1, EITHER, -1, NULL});
    /* without checksums a corrupted header is still caught */
    run("corrupt_byte=0", "1", NULL, (struct run){1000, 1, MUST_FAIL, 0, "malformed"});
}

/* PRIDE_CHECKSUM=crc32c on rank 0 only: the ranks fail, and rank 0 says why. */
static int some_ranks_rank(int rank, int n, const char *store, void *arg)
{
    (void)arg;
    if (rank == 0)
        setenv("PRIDE_CHECKSUM", "crc32c", 1);
    else
        unsetenv("PRIDE_CHECKSUM");
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    cfg.rank = rank;
    cfg.nranks = n;
    cfg.store = store;
    cfg.timeout_ms = 5000;
    pride_context_t *ctx;
    HCHECK_OK(NULL, pride_init(&cfg, &ctx));
    struct run r = {100, 1, MUST_FAIL, 0, "without a checksum"};
    int rc = run_rank(ctx, rank, n, &r);
    pride_finalize(ctx);
    return rc;
}

static void test_checksum_on_some_ranks_only(void **state)
{
    (void)state;
    assert_int_equal(harness_fork(3, some_ranks_rank, NULL, NULL), 0);
}

static void test_close_after(void **state)
{
    (void)state;
    static const long bytes[] = {0, 1, 47, 48, 52, 4000, 40100, 100000, 1000000};
    char f[64];
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++) {
        snprintf(f, sizeof f, "close_after=%ld", bytes[i]);
        int e = bytes[i] < 4 * 2 * 40052 ? MUST_FAIL : EITHER;
        run(f, "1", NULL, (struct run){10000, 4, e, 1, NULL});
        run(f, "2", "crc32c", (struct run){10000, 4, e, 2, NULL});
    }
}

static void test_delay(void **state)
{
    (void)state;
    run("delay_ms=20", "1", NULL, (struct run){5000, 3, MUST_PASS, -1, NULL});
    /* a rank slower than the timeout makes the others time out, never hang */
    run("delay_ms=7000", "2", NULL, (struct run){10, 1, MUST_FAIL, 0, "timed out"});
}

static void test_short_io(void **state)
{
    (void)state;
    run("short_io", "0", NULL, (struct run){20000, 2, MUST_PASS, -1, NULL});
    run("short_io", "1", "crc32c", (struct run){20000, 2, MUST_PASS, -1, NULL});
    run("short_io,delay_ms=1", "2", "crc32c", (struct run){300, 2, MUST_PASS, -1, NULL});
}

static void test_bad_fault_spec(void **state)
{
    (void)state;
    setenv("PRIDE_FAULT", "explode=1", 1);
    setenv("PRIDE_FAULT_RANK", "0", 1);
    pride_config_t cfg = PRIDE_CONFIG_INIT;
    cfg.transport = "faulty";
    pride_context_t *ctx = NULL;
    assert_int_equal(pride_init(&cfg, &ctx), PRIDE_ERR_INVALID);
    setenv("PRIDE_FAULT", "short_io", 1);
    setenv("PRIDE_CHECKSUM", "md5", 1);
    assert_int_equal(pride_init(&cfg, &ctx), PRIDE_ERR_INVALID);
    unsetenv("PRIDE_CHECKSUM");
    unsetenv("PRIDE_FAULT");
    unsetenv("PRIDE_FAULT_RANK");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksum_clean),
        cmocka_unit_test(test_checksum_catches_corruption),
        cmocka_unit_test(test_checksum_on_some_ranks_only),
        cmocka_unit_test(test_close_after),
        cmocka_unit_test(test_delay),
        cmocka_unit_test(test_short_io),
        cmocka_unit_test(test_bad_fault_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
