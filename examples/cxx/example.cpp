/*
 * example.cpp: the C example's three checks from C++, which also shows that the pride
 * headers compile as C++ (they declare everything inside extern "C").
 * Run it as `pride-run -n 2 ./pride_example_cxx`.
 *
 * The one idea: wrap the context in a small RAII owner so every path finalizes it,
 * and compare each collective's result with what every rank can compute alone.
 */
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <pride/pride.h>

namespace {

class Context {
public:
    Context()
    {
        int st = pride_init(nullptr, &ctx_);
        if (st != PRIDE_OK)
            throw std::runtime_error("pride_init failed: " + std::to_string(st));
    }
    ~Context() { pride_finalize(ctx_); }
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;
    pride_context_t *get() const { return ctx_; }
    void check(int st, const char *what) const
    {
        if (st != PRIDE_OK)
            throw std::runtime_error(std::string(what) + ": " + pride_last_error(ctx_));
    }

private:
    pride_context_t *ctx_ = nullptr;
};

int run()
{
    Context ctx;
    const int rank = pride_rank(ctx.get()), n = pride_nranks(ctx.get());

    std::vector<double> mine(16, rank + 1.0), sum(16);
    ctx.check(pride_allreduce(ctx.get(), mine.data(), sum.data(), mine.size(), PRIDE_FLOAT64,
                              PRIDE_SUM),
              "pride_allreduce");
    for (double v : sum)
        if (v != n * (n + 1) / 2.0)
            throw std::runtime_error("allreduce: wrong sum " + std::to_string(v));

    std::uint64_t bits = 0xffffffffull | (rank == 0 ? 0xffffull << 32 : 0), voted = 0;
    ctx.check(pride_vote(ctx.get(), &bits, &voted, 64, PRIDE_TIE_NEGATIVE), "pride_vote");
    if (voted != (0xffffffffull | (n == 1 ? 0xffffull << 32 : 0)))
        throw std::runtime_error("vote: wrong bits");

    std::vector<float> params(8, 1.0f), grads(8, 0.5f * (rank + 1));
    const pride_tensor_t tensors[] = {{"w", 0, 8}};
    pride_optim_config_t cfg = PRIDE_OPTIM_CONFIG_INIT;
    cfg.lr = 0.01f;
    pride_optim_t *opt = nullptr;
    ctx.check(pride_optim_create(ctx.get(), &cfg, params.data(), params.size(), tensors, 1, &opt),
              "pride_optim_create");
    int st = pride_optim_step(opt, grads.data());
    pride_optim_destroy(opt);
    ctx.check(st, "pride_optim_step");
    for (float p : params)
        if (std::fabs(p - 0.99f) > 1e-6f)
            throw std::runtime_error("optimizer: wrong parameter " + std::to_string(p));

    std::printf("rank %d of %d: C++ allreduce %g vote %016llx lion %.2f ok\n", rank, n, sum[0],
                static_cast<unsigned long long>(voted), params[0]);
    return 0;
}

} // namespace

int main()
{
    try {
        return run();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
