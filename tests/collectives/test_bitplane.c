/*
 * The bit-plane kernels against per-element scalar references, on every kernel
 * path the CPU has (portable, AVX2, AVX-512), and the paths against each other.
 *
 * The path is picked once per process from PRIDE_KERNELS, so each path runs in a
 * forked child that sets it first; the child checks every result against the
 * references, then sends a digest of all its outputs to the parent, which demands
 * the same digest from every path. The parent itself never calls a dispatched
 * kernel (that would fix the choice for the children it forks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bitplane.h"
#include "harness.h"

/* ---------------------------------------------------------- child side */

struct digest {
    uint64_t h;
};

static void digest_add(struct digest *d, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        d->h = (d->h ^ b[i]) * UINT64_C(0x100000001B3);
}

static unsigned ref_count(const uint64_t *planes, int nplanes, size_t nwords, size_t i)
{
    unsigned c = 0;
    for (int j = 0; j < nplanes; j++)
        c |= (unsigned)((planes[(size_t)j * nwords + i / 64] >> (i % 64)) & 1) << j;
    return c;
}

static void encode(uint64_t *planes, int nplanes, size_t nwords, const unsigned *counts)
{
    memset(planes, 0, (size_t)nplanes * nwords * sizeof *planes);
    for (size_t i = 0; i < 64 * nwords; i++)
        for (int j = 0; j < nplanes; j++)
            planes[(size_t)j * nwords + i / 64] |= (uint64_t)((counts[i] >> j) & 1) << (i % 64);
}

static int ref_majority(unsigned count, int nranks, pride_tie_t tie, size_t i)
{
    unsigned half = (unsigned)nranks / 2;
    if (count > half)
        return 1;
    if (nranks % 2 || count != half)
        return 0;
    if (tie == PRIDE_TIE_POSITIVE)
        return 1;
    if (tie == PRIDE_TIE_ALTERNATE)
        return i % 2 == 0;
    return 0;
}

/* Sizes that cover the SIMD bodies and every tail length. */
static const size_t sizes[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1027};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void check_add(struct digest *d, uint64_t *rng)
{
    for (size_t si = 0; si < NSIZES; si++) {
        size_t nw = sizes[si], ne = 64 * nw;
        for (int k = 0; k <= 300; k = k < 20 ? k + 1 : k * 2 + 7) {
            int nin = bitplane_planes(k), nout = bitplane_planes(k + 1);
            unsigned *cnt = calloc(ne + 1, sizeof *cnt);
            uint64_t *in = calloc((size_t)nin * nw + 1, 8), *out = calloc((size_t)nout * nw + 1, 8);
            uint64_t *vote = calloc(nw + 1, 8), *alias = calloc((size_t)nout * nw + 1, 8);
            HCHECK(cnt && in && out && vote && alias);
            for (size_t i = 0; i < ne; i++) {
                uint64_t r = harness_rand(rng);
                /* the extremes (0 and k, where carries run furthest) and anything between */
                uint64_t c = r % 4 == 0   ? (uint64_t)k
                             : r % 4 == 1 ? 0
                                          : (r >> 8) % (uint64_t)(k + 1);
                cnt[i] = (unsigned)c;
            }
            encode(in, nin, nw, cnt);
            for (size_t w = 0; w < nw; w++)
                vote[w] = harness_rand(rng);
            /* guard words past the end must survive */
            out[(size_t)nout * nw] = UINT64_C(0xDEADBEEF);
            bitplane_add_vote(out, in, nin, nout, vote, nw);
            HCHECK(out[(size_t)nout * nw] == UINT64_C(0xDEADBEEF));
            for (size_t i = 0; i < ne; i++)
                HCHECK(ref_count(out, nout, nw, i) == cnt[i] + ((vote[i / 64] >> (i % 64)) & 1));
            /* out aliasing in: the in-place form the ring uses */
            memcpy(alias, in, (size_t)nin * nw * 8);
            bitplane_add_vote(alias, alias, nin, nout, vote, nw);
            HCHECK(memcmp(alias, out, (size_t)nout * nw * 8) == 0);
            digest_add(d, out, (size_t)nout * nw * 8);
            free(cnt);
            free(in);
            free(out);
            free(vote);
            free(alias);
        }
    }
}

static void check_majority(struct digest *d, uint64_t *rng)
{
    for (size_t si = 0; si < NSIZES; si++) {
        size_t nw = sizes[si], ne = 64 * nw;
        for (int n = 1; n <= 40; n = n < 18 ? n + 1 : n + 11) {
            /* the planes counts of n ranks need, and one short (no count reaches T) */
            for (int nplanes = bitplane_planes(n) - 1; nplanes <= bitplane_planes(n); nplanes++) {
                unsigned maxc = (1u << nplanes) - 1;
                if ((unsigned)n < maxc)
                    maxc = (unsigned)n;
                unsigned *cnt = calloc(ne + 1, sizeof *cnt);
                uint64_t *planes = calloc((size_t)nplanes * nw + 1, 8), *out = calloc(nw + 1, 8);
                HCHECK(cnt && planes && out);
                for (size_t i = 0; i < ne; i++) {
                    uint64_t r = harness_rand(rng);
                    unsigned c = r % 2 ? (unsigned)n / 2 : (unsigned)((r >> 8) % (maxc + 1));
                    cnt[i] = c > maxc ? maxc : c;
                }
                encode(planes, nplanes, nw, cnt);
                for (int tie = PRIDE_TIE_NEGATIVE; tie <= PRIDE_TIE_ALTERNATE; tie++) {
                    for (size_t first = 0; first <= 64; first += 64) {
                        out[nw] = UINT64_C(0xFEEDFACE);
                        bitplane_majority(out, planes, nplanes, nw, n, (pride_tie_t)tie, first);
                        HCHECK(out[nw] == UINT64_C(0xFEEDFACE));
                        for (size_t i = 0; i < ne; i++)
                            HCHECK((int)((out[i / 64] >> (i % 64)) & 1) ==
                                   ref_majority(cnt[i], n, (pride_tie_t)tie, first + i));
                        digest_add(d, out, nw * 8);
                    }
                }
                free(cnt);
                free(planes);
                free(out);
            }
        }
    }
}

/* The fused last step against the reference count-then-compare, for every ring step
   (counts of k contributions plus one vote, k + 1 = 1..257), every tie rule, every size;
   and with out == vote, as when the vote's output buffer is its input. */
static void check_add_majority(struct digest *d, uint64_t *rng)
{
    for (size_t si = 0; si < NSIZES; si++) {
        size_t nw = sizes[si], ne = 64 * nw;
        static const int ks[] = {0,  1,  2,  3,  4,  5,  6,  7,  8,   9,   10,  11,  12, 13,
                                 14, 15, 16, 17, 31, 32, 63, 64, 100, 127, 128, 254, 255};
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            int k = ks[ki];
            int nin = bitplane_planes(k), nout = bitplane_planes(k + 1), n = k + 1;
            unsigned *cnt = calloc(ne + 1, sizeof *cnt);
            uint64_t *in = calloc((size_t)nin * nw + 1, 8), *vote = calloc(nw + 1, 8);
            uint64_t *out = calloc(nw + 1, 8), *same = calloc(nw + 1, 8);
            HCHECK(cnt && in && vote && out && same);
            for (size_t i = 0; i < ne; i++) {
                uint64_t r = harness_rand(rng);
                /* ties (n/2 after the vote), the extremes, and anything between */
                uint64_t c = r % 4 == 0   ? (uint64_t)(n / 2) - (r >> 8) % 2
                             : r % 4 == 1 ? (r >> 8) % 2 * (uint64_t)k
                                          : (r >> 8) % (uint64_t)(k + 1);
                cnt[i] = (unsigned)(c > (uint64_t)k ? (uint64_t)k : c);
            }
            encode(in, nin, nw, cnt);
            for (size_t w = 0; w < nw; w++)
                vote[w] = harness_rand(rng);
            for (int tie = PRIDE_TIE_NEGATIVE; tie <= PRIDE_TIE_ALTERNATE; tie++) {
                out[nw] = UINT64_C(0xFEEDFACE);
                bitplane_add_majority(out, in, nin, nout, vote, nw, n, (pride_tie_t)tie, 0);
                HCHECK(out[nw] == UINT64_C(0xFEEDFACE));
                for (size_t i = 0; i < ne; i++) {
                    unsigned c = cnt[i] + (unsigned)((vote[i / 64] >> (i % 64)) & 1);
                    HCHECK((int)((out[i / 64] >> (i % 64)) & 1) ==
                           ref_majority(c, n, (pride_tie_t)tie, i));
                }
                memcpy(same, vote, nw * 8);
                bitplane_add_majority(same, in, nin, nout, same, nw, n, (pride_tie_t)tie, 0);
                HCHECK(memcmp(same, out, nw * 8) == 0);
                digest_add(d, out, nw * 8);
            }
            free(cnt);
            free(in);
            free(vote);
            free(out);
            free(same);
        }
    }
}

static void check_counts(struct digest *d, uint64_t *rng)
{
    for (size_t si = 0; si < NSIZES; si++) {
        size_t nw = sizes[si], ne = 64 * nw;
        for (int nplanes = 0; nplanes <= 8; nplanes++) {
            unsigned *cnt = calloc(ne + 1, sizeof *cnt);
            uint64_t *planes = calloc((size_t)nplanes * nw + 1, 8);
            uint8_t *out = malloc(ne + 1);
            HCHECK(cnt && planes && out);
            for (size_t i = 0; i < ne; i++)
                cnt[i] = (unsigned)(harness_rand(rng) & ((1u << nplanes) - 1));
            encode(planes, nplanes, nw, cnt);
            /* every element count, and ragged ends that stop mid-word */
            size_t cuts[] = {ne, ne > 0 ? ne - 1 : 0, ne > 64 ? ne - 63 : 0,
                             ne / 2 + 5 < ne ? ne / 2 + 5 : ne};
            for (size_t ci = 0; ci < 4; ci++) {
                size_t nelems = cuts[ci];
                memset(out, 0xA5, ne + 1);
                bitplane_to_counts(out, planes, nplanes, nw, nelems);
                for (size_t i = 0; i < nelems; i++)
                    HCHECK(out[i] == cnt[i]);
                for (size_t i = nelems; i <= ne; i++)
                    HCHECK(out[i] == 0xA5);
                digest_add(d, out, nelems);
            }
            free(cnt);
            free(planes);
            free(out);
        }
    }
}

/* Run every kernel check on path isa; write the digest to fd. Returns the exit code:
   0 ok, 2 the CPU lacks the path, 1 a check failed (HCHECK exits with 1). */
static int child_run(const char *isa, int fd)
{
    setenv("PRIDE_KERNELS", isa, 1);
    __builtin_cpu_init();
    int have = !strcmp(isa, "portable") ||
               (!strcmp(isa, "avx2") && __builtin_cpu_supports("avx2")) ||
               (!strcmp(isa, "avx512") && __builtin_cpu_supports("avx512f") &&
                __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"));
    if (!have)
        return 2;
    if (strcmp(bitplane_isa(), isa) != 0) {
        fprintf(stderr, "asked for %s, got %s\n", isa, bitplane_isa());
        return 1;
    }
    struct digest d = {UINT64_C(0xCBF29CE484222325)};
    uint64_t rng = 12345;
    check_add(&d, &rng);
    check_majority(&d, &rng);
    check_add_majority(&d, &rng);
    check_counts(&d, &rng);
    return write(fd, &d.h, sizeof d.h) == (ssize_t)sizeof d.h ? 0 : 1;
}

/* ---------------------------------------------------------- parent side */

static void test_planes(void **state)
{
    (void)state;
    static const int want[] = {0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5};
    for (int k = 0; k < 17; k++)
        assert_int_equal(bitplane_planes(k), want[k]);
    assert_int_equal(bitplane_planes(255), 8);
    assert_int_equal(bitplane_planes(256), 9);
}

static void test_paths_agree(void **state)
{
    (void)state;
    static const char *isas[] = {"portable", "avx2", "avx512"};
    uint64_t digests[3];
    int ran[3] = {0, 0, 0};
    for (int p = 0; p < 3; p++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            int rc = child_run(isas[p], fds[1]);
            fflush(stderr);
            _exit(rc);
        }
        close(fds[1]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 2) {
            print_message("kernel path %s: not supported by this CPU, skipped\n", isas[p]);
            close(fds[0]);
            continue;
        }
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(read(fds[0], &digests[p], sizeof digests[p]), (ssize_t)sizeof digests[p]);
        close(fds[0]);
        ran[p] = 1;
        print_message("kernel path %s: ok, digest %016llx\n", isas[p],
                      (unsigned long long)digests[p]);
    }
    assert_true(ran[0]);
    for (int p = 1; p < 3; p++)
        if (ran[p])
            assert_true(digests[p] == digests[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planes),
        cmocka_unit_test(test_paths_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
