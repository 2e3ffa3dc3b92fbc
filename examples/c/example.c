/*
 * example.c: a pride program in C, built out of tree against an installed pride
 * (find_package(pride) or pkg-config). Run it as `pride-run -n 2 ./pride_example_c`.
 *
 * The one idea: each of the three things a data-parallel trainer needs -- a sum of
 * gradients (pride_allreduce), a majority vote of signs (pride_vote) and an optimizer
 * step that keeps the replicas identical (pride_optim_step) -- is checked against a
 * value every rank can compute by itself, and the program exits 1 if one differs.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <pride/pride.h>

#define N_PARAMS 8

static int example_fail(pride_context_t *ctx, const char *what, int st)
{
    fprintf(stderr, "%s: %s (%d)\n", what, ctx ? pride_last_error(ctx) : "", st);
    return 1;
}

int main(void)
{
    pride_context_t *ctx = NULL;
    pride_optim_t *opt = NULL;
    int rc = 1;
    int st = pride_init(NULL, &ctx);
    if (st != PRIDE_OK)
        return example_fail(NULL, "pride_init", st);
    int rank = pride_rank(ctx), n = pride_nranks(ctx);

    /* allreduce: the sum of rank + 1 over ranks is n(n+1)/2 */
    float mine[4], sum[4];
    for (int i = 0; i < 4; i++)
        mine[i] = (float)(rank + 1) * (float)(i + 1);
    st = pride_allreduce(ctx, mine, sum, 4, PRIDE_FLOAT32, PRIDE_SUM);
    if (st != PRIDE_OK) {
        example_fail(ctx, "pride_allreduce", st);
        goto done;
    }
    for (int i = 0; i < 4; i++)
        if (sum[i] != (float)(n * (n + 1) / 2) * (float)(i + 1)) {
            fprintf(stderr, "allreduce: element %d is %g\n", i, sum[i]);
            goto done;
        }

    /* vote: bits 0..31 set everywhere win; bits 32..47, set by rank 0 only, lose
       unless rank 0 is alone (ties go negative) */
    uint64_t bits = 0xffffffffull | (rank == 0 ? 0xffffull << 32 : 0), voted = 0;
    st = pride_vote(ctx, &bits, &voted, 64, PRIDE_TIE_NEGATIVE);
    if (st != PRIDE_OK) {
        example_fail(ctx, "pride_vote", st);
        goto done;
    }
    uint64_t want = 0xffffffffull | (n == 1 ? 0xffffull << 32 : 0);
    if (voted != want) {
        fprintf(stderr, "vote: got %016llx, want %016llx\n", (unsigned long long)voted,
                (unsigned long long)want);
        goto done;
    }

    /* optimizer: Lion on two tensors; every rank's gradient is positive, so one step
       moves every parameter down by lr on every rank */
    float params[N_PARAMS], grads[N_PARAMS];
    for (int i = 0; i < N_PARAMS; i++) {
        params[i] = 1.0f;
        grads[i] = 0.5f * (float)(rank + 1);
    }
    pride_tensor_t tensors[2] = {{"w", 0, 6}, {"b", 6, 2}};
    pride_optim_config_t cfg = PRIDE_OPTIM_CONFIG_INIT;
    cfg.lr = 0.01f;
    st = pride_optim_create(ctx, &cfg, params, N_PARAMS, tensors, 2, &opt);
    if (st == PRIDE_OK)
        st = pride_optim_step(opt, grads);
    if (st != PRIDE_OK) {
        example_fail(ctx, "pride_optim", st);
        goto done;
    }
    for (int i = 0; i < N_PARAMS; i++)
        if (fabsf(params[i] - 0.99f) > 1e-6f) {
            fprintf(stderr, "optimizer: parameter %d is %g\n", i, params[i]);
            goto done;
        }

    printf("rank %d of %d: allreduce %g vote %016llx lion %.2f ok\n", rank, n, sum[0],
           (unsigned long long)voted, params[0]);
    rc = 0;
done:
    if (opt)
        pride_optim_destroy(opt);
    pride_finalize(ctx);
    return rc;
}
