/*
 * pride_vote, pride_vote_count and the allgather baseline across real rank
 * processes, against a naive reference: unpack every rank's bits, count, compare.
 *
 * Every rank's input is a pure function of (case, rank, word), so each rank rebuilds
 * all the others' inputs and checks its own result against the reference; equal
 * results on every rank follow. Inputs carry garbage past nbits (it must be
 * ignored), outputs must be zero there and untouched past the last word. The wire
 * cost is checked to the byte against the formula of DESIGN.md §3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bitplane.h"
#include "ctx.h"
#include "harness.h"
#include "vote_internal.h"

enum vote_pattern { PAT_RANDOM, PAT_TIES, PAT_ALL_SET, PAT_ALL_CLEAR, PAT_ALTERNATING, PAT_COUNT };

static const char *pattern_name[] = {"random", "ties", "all-set", "all-clear", "alternating"};

/* Word w of rank q's input. Bits past nbits are whatever this returns: garbage. */
static uint64_t gen_word(int pat, int q, int P, size_t w, size_t nbits)
{
    uint64_t st = (uint64_t)q * UINT64_C(0x100000001B3) ^ (uint64_t)w << 20 ^ nbits;
    uint64_t x = 0;
    switch (pat) {
    case PAT_RANDOM:
        return harness_rand(&st);
    case PAT_TIES: /* element i is set on floor(P/2) ranks: a tie for even P */
        for (int b = 0; b < 64; b++)
            x |= (uint64_t)(((size_t)q + 64 * w + (size_t)b) % (size_t)P < (size_t)P / 2) << b;
        return x;
    case PAT_ALL_SET:
        return ~UINT64_C(0);
    case PAT_ALL_CLEAR:
        return 0;
    default:
        return q % 2 ? UINT64_C(0xAAAAAAAAAAAAAAAA) : UINT64_C(0x5555555555555555);
    }
}

static void gen_input(uint64_t *v, int pat, int q, int P, size_t nbits)
{
    size_t nwords = (nbits + 63) / 64;
    for (size_t w = 0; w < nwords; w++)
        v[w] = gen_word(pat, q, P, w, nbits);
    /* make sure the bits past nbits are not all zero for the masking checks */
    if (nbits % 64)
        v[nwords - 1] |= ~UINT64_C(0) << (nbits % 64);
}

static int ref_bit(unsigned count, int P, pride_tie_t tie, size_t i)
{
    unsigned half = (unsigned)P / 2;
    if (count != half || P % 2)
        return count > half;
    return tie == PRIDE_TIE_POSITIVE || (tie == PRIDE_TIE_ALTERNATE && i % 2 == 0);
}

#define GUARD UINT64_C(0x0123456789ABCDEF)

/* Compare a vote result (nwords words and a guard word after) with the reference. */
static void check_bits(const uint64_t *got, const uint8_t *cnt, int P, pride_tie_t tie,
                       size_t nbits)
{
    size_t nwords = (nbits + 63) / 64;
    for (size_t w = 0; w < nwords; w++) {
        uint64_t want = 0;
        for (size_t b = 0; b < 64 && 64 * w + b < nbits; b++)
            want |= (uint64_t)ref_bit(cnt[64 * w + b], P, tie, 64 * w + b) << b;
        if (got[w] != want)
            fprintf(stderr, "P=%d tie=%d nbits=%zu: word %zu is %016llx, want %016llx\n", P,
                    (int)tie, nbits, w, (unsigned long long)got[w], (unsigned long long)want);
        HCHECK(got[w] == want);
    }
    HCHECK(got[nwords] == GUARD);
}

static void one_case(pride_context_t *ctx, int rank, int P, int pat, size_t nbits)
{
    size_t nwords = (nbits + 63) / 64;
    uint64_t *in = calloc(nwords + 1, 8), *keep = calloc(nwords + 1, 8);
    uint64_t *out = calloc(nwords + 1, 8), *tmp = calloc(nwords + 1, 8);
    uint8_t *cnt = calloc(nbits + 1, 1), *counts = calloc(nbits + 1, 1);
    HCHECK(in && keep && out && tmp && cnt && counts);
    for (int q = 0; q < P; q++) {
        gen_input(tmp, pat, q, P, nbits);
        for (size_t i = 0; i < nbits; i++)
            cnt[i] = (uint8_t)(cnt[i] + ((tmp[i / 64] >> (i % 64)) & 1));
    }
    gen_input(in, pat, rank, P, nbits);
    memcpy(keep, in, (nwords + 1) * 8);

    for (int tie = PRIDE_TIE_NEGATIVE; tie <= PRIDE_TIE_ALTERNATE; tie++) {
        memset(out, 0xEE, nwords * 8);
        out[nwords] = GUARD;
        HCHECK_OK(ctx, pride_vote(ctx, in, out, nbits, (pride_tie_t)tie));
        check_bits(out, cnt, P, (pride_tie_t)tie, nbits);
        HCHECK(memcmp(in, keep, (nwords + 1) * 8) == 0); /* sendbits is const */
    }
    /* in place */
    memcpy(out, in, nwords * 8);
    out[nwords] = GUARD;
    HCHECK_OK(ctx, pride_vote(ctx, out, out, nbits, PRIDE_TIE_ALTERNATE));
    check_bits(out, cnt, P, PRIDE_TIE_ALTERNATE, nbits);

    if (P <= 255) {
        memset(counts, 0xEE, nbits + 1);
        HCHECK_OK(ctx, pride_vote_count(ctx, in, counts, nbits));
        for (size_t i = 0; i < nbits; i++)
            HCHECK(counts[i] == cnt[i]);
        HCHECK(counts[nbits] == 0xEE);
    }

    /* the baseline gives the same bits (and works in place) */
    memset(out, 0xEE, nwords * 8);
    out[nwords] = GUARD;
    HCHECK_OK(ctx, pride_vote_allgather(ctx, in, out, nbits, PRIDE_TIE_POSITIVE));
    check_bits(out, cnt, P, PRIDE_TIE_POSITIVE, nbits);
    memcpy(out, in, nwords * 8);
    HCHECK_OK(ctx, pride_vote_allgather(ctx, out, out, nbits, PRIDE_TIE_NEGATIVE));
    check_bits(out, cnt, P, PRIDE_TIE_NEGATIVE, nbits);

    free(in);
    free(keep);
    free(out);
    free(tmp);
    free(cnt);
    free(counts);
}

struct sizes {
    const size_t *nbits;
    int n;
};

static int rank_correct(pride_context_t *ctx, int rank, int nranks, void *arg)
{
    const struct sizes *sz = arg;
    for (int k = 0; k < sz->n; k++)
        for (int pat = 0; pat < PAT_COUNT; pat++) {
            if (rank == 0 && getenv("PRIDE_TEST_VERBOSE"))
                fprintf(stderr, "P=%d nbits=%zu %s\n", nranks, sz->nbits[k], pattern_name[pat]);
            one_case(ctx, rank, nranks, pat, sz->nbits[k]);
        }
    return 0;
}

static void run_correct(int P)
{
    static const size_t full[] = {0, 1, 63, 64, 65, 1000003};
    static const size_t small[] = {0, 1, 63, 64, 65, 100003};
    struct sizes sz = {P > 9 ? small : full, 6};
    assert_int_equal(harness_run(P, rank_correct, &sz, NULL), 0);
}

static void test_vote_1(void **s) { (void)s; run_correct(1); }
static void test_vote_2(void **s) { (void)s; run_correct(2); }
static void test_vote_3(void **s) { (void)s; run_correct(3); }
static void test_vote_4(void **s) { (void)s; run_correct(4); }
static void test_vote_5(void **s) { (void)s; run_correct(5); }
static void test_vote_6(void **s) { (void)s; run_correct(6); }
static void test_vote_7(void **s) { (void)s; run_correct(7); }
static void test_vote_8(void **s) { (void)s; run_correct(8); }
static void test_vote_9(void **s) { (void)s; run_correct(9); }
static void test_vote_16(void **s) { (void)s; run_correct(16); }

/* Blocks of several segments of chunks, uneven by one word: the pipeline's slot
   reuse, segment boundaries and short last segments. */
static void test_vote_many_chunks(void **s)
{
    (void)s;
    for (int P = 2; P <= 4; P++) {
        size_t nbits = 64 * ((size_t)P * 40000 + (size_t)P - 1) + 7;
        struct sizes sz = {&nbits, 1};
        assert_int_equal(harness_run(P, rank_correct, &sz, NULL), 0);
    }
}

/* ---- bytes on the wire ---- */

static unsigned long long sent_bytes(pride_context_t *ctx)
{
    pride_stats_t st = PRIDE_STATS_INIT;
    HCHECK_OK(ctx, pride_get_stats(ctx, &st));
    return st.bytes_sent;
}

static int rank_bytes(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)arg;
    size_t nbits = (size_t)64 * (size_t)P * 1024 * 12; /* equal blocks of 12288 words */
    size_t nwords = nbits / 64;
    uint64_t *in = malloc(nwords * 8), *out = malloc(nwords * 8);
    uint8_t *counts = malloc(nbits);
    HCHECK(in && out && counts);
    gen_input(in, PAT_RANDOM, rank, P, nbits);
    unsigned long long block = nbits / (size_t)P / 8, sum = 0;
    for (int k = 1; k <= P - 1; k++)
        sum += (unsigned long long)bitplane_planes(k);

    HCHECK_OK(ctx, pride_reset_stats(ctx));
    HCHECK_OK(ctx, pride_vote(ctx, in, out, nbits, PRIDE_TIE_ALTERNATE));
    unsigned long long steps = (unsigned long long)(P - 1);
    unsigned long long got = sent_bytes(ctx), want = block * sum + steps * block;
    if (got != want)
        fprintf(stderr, "rank %d of %d: pride_vote sent %llu bytes, want %llu\n", rank, P, got,
                want);
    HCHECK(got == want);

    HCHECK_OK(ctx, pride_reset_stats(ctx));
    HCHECK_OK(ctx, pride_vote_count(ctx, in, counts, nbits));
    got = sent_bytes(ctx);
    want = block * sum + steps * (unsigned long long)bitplane_planes(P) * block;
    if (got != want)
        fprintf(stderr, "rank %d of %d: pride_vote_count sent %llu bytes, want %llu\n", rank, P,
                got, want);
    HCHECK(got == want);

    HCHECK_OK(ctx, pride_reset_stats(ctx));
    HCHECK_OK(ctx, pride_vote_allgather(ctx, in, out, nbits, PRIDE_TIE_ALTERNATE));
    got = sent_bytes(ctx);
    want = steps * nbits / 8;
    if (got != want)
        fprintf(stderr, "rank %d of %d: pride_vote_allgather sent %llu bytes, want %llu\n", rank,
                P, got, want);
    HCHECK(got == want);
    free(in);
    free(out);
    free(counts);
    return 0;
}

static void test_vote_bytes(void **s)
{
    (void)s;
    for (int P = 2; P <= 9; P++)
        assert_int_equal(harness_run(P, rank_bytes, NULL, NULL), 0);
}

/* ---- bad arguments ---- */

static int rank_invalid(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)rank;
    (void)P;
    (void)arg;
    uint64_t in[2] = {5, 6}, out[2];
    uint8_t counts[100];
    HCHECK(pride_vote(NULL, in, out, 100, PRIDE_TIE_NEGATIVE) == PRIDE_ERR_INVALID);
    HCHECK(pride_vote(ctx, NULL, out, 100, PRIDE_TIE_NEGATIVE) == PRIDE_ERR_INVALID);
    HCHECK(strstr(pride_last_error(ctx), "pride_vote") != NULL);
    HCHECK(pride_vote(ctx, in, NULL, 100, PRIDE_TIE_NEGATIVE) == PRIDE_ERR_INVALID);
    HCHECK(pride_vote(ctx, in, out, 100, (pride_tie_t)3) == PRIDE_ERR_INVALID);
    HCHECK(pride_vote(ctx, in, out, 100, (pride_tie_t)-1) == PRIDE_ERR_INVALID);
    HCHECK(pride_vote_count(NULL, in, counts, 100) == PRIDE_ERR_INVALID);
    HCHECK(pride_vote_count(ctx, NULL, counts, 100) == PRIDE_ERR_INVALID);
    HCHECK(pride_vote_count(ctx, in, NULL, 100) == PRIDE_ERR_INVALID);
    HCHECK(pride_vote_allgather(NULL, in, out, 100, PRIDE_TIE_NEGATIVE) == PRIDE_ERR_INVALID);
    HCHECK(pride_vote_allgather(ctx, in, out, 100, (pride_tie_t)9) == PRIDE_ERR_INVALID);
    HCHECK(pride_vote(ctx, in, out, SIZE_MAX, PRIDE_TIE_NEGATIVE) == PRIDE_ERR_INVALID);
    /* NULL buffers are fine for zero bits, and the context is still good afterwards */
    HCHECK_OK(ctx, pride_vote(ctx, NULL, NULL, 0, PRIDE_TIE_NEGATIVE));
    HCHECK_OK(ctx, pride_vote_count(ctx, NULL, NULL, 0));
    HCHECK_OK(ctx, pride_vote(ctx, in, out, 100, PRIDE_TIE_NEGATIVE));
    HCHECK(out[0] == 5 && out[1] == 6);
    return 0;
}

static void test_vote_invalid(void **s)
{
    (void)s;
    assert_int_equal(harness_run(2, rank_invalid, NULL, NULL), 0);
}

/* Ranks that disagree on nbits or on the tie rule all get PRIDE_ERR_MISMATCH. */
static int rank_mismatch(pride_context_t *ctx, int rank, int P, void *arg)
{
    (void)P;
    int what = *(const int *)arg;
    uint64_t in[4] = {1, 2, 3, 4}, out[4];
    size_t nbits = what == 0 && rank == 1 ? 200 : 100;
    pride_tie_t tie = what == 1 && rank == 1 ? PRIDE_TIE_POSITIVE : PRIDE_TIE_NEGATIVE;
    int st = pride_vote(ctx, in, out, nbits, tie);
    if (st != PRIDE_ERR_MISMATCH)
        fprintf(stderr, "rank %d: got %s (%s)\n", rank, pride_strerror(st), pride_last_error(ctx));
    HCHECK_STATUS(ctx, st, st == PRIDE_ERR_MISMATCH);
    return 0;
}

static void test_vote_mismatch(void **s)
{
    (void)s;
    for (int what = 0; what < 2; what++)
        assert_int_equal(harness_run(3, rank_mismatch, &what, NULL), 0);
}

/* Too many ranks is refused before anything goes on the wire, so a context that only
   claims its size (no transport behind it) shows it. */
static void test_vote_too_many_ranks(void **s)
{
    (void)s;
    struct pride_context fake;
    memset(&fake, 0, sizeof fake);
    pthread_mutex_init(&fake.mu, NULL);
    uint64_t in[1] = {1}, out[1];
    uint8_t counts[64];
    fake.nranks = 256;
    assert_int_equal(pride_vote_count(&fake, in, counts, 64), PRIDE_ERR_UNSUPPORTED);
    assert_non_null(strstr(pride_last_error(&fake), "256 ranks"));
    fake.nranks = 257;
    assert_int_equal(pride_vote(&fake, in, out, 64, PRIDE_TIE_NEGATIVE), PRIDE_ERR_UNSUPPORTED);
    assert_int_equal(pride_vote_allgather(&fake, in, out, 64, PRIDE_TIE_NEGATIVE),
                     PRIDE_ERR_UNSUPPORTED);
    pthread_mutex_destroy(&fake.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vote_too_many_ranks), cmocka_unit_test(test_vote_mismatch),
        cmocka_unit_test(test_vote_invalid), cmocka_unit_test(test_vote_1),
        cmocka_unit_test(test_vote_2),       cmocka_unit_test(test_vote_3),
        cmocka_unit_test(test_vote_4),       cmocka_unit_test(test_vote_5),
        cmocka_unit_test(test_vote_6),       cmocka_unit_test(test_vote_7),
        cmocka_unit_test(test_vote_8),       cmocka_unit_test(test_vote_9),
        cmocka_unit_test(test_vote_16),      cmocka_unit_test(test_vote_many_chunks),
        cmocka_unit_test(test_vote_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
