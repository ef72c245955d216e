// gaussian-embed in training: the Gaussian objectives on its codes, and end to end on a toy Markov chain.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "core/embedded_gaussian.h"
#include "core/registry.h"
#include "data/factory.h"
#include "data/toy.h"
#include "train/objectives.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace gsdiff {
namespace {

// The Gaussian objectives compare x0_hat with the code e(x0), not the token ids: replaying the same draws
// (t, z_t) by hand, `weighted` with likelihood weighting is the VDM integrand per token / L, and `simple`
// is the mean of ||eps - eps_hat||^2 over the L x d code dimensions.
TEST(EmbeddedObjectives, WeightedAndSimpleScoreTheCodes) {
  register_builtins();
  auto p = make_process({{"name", "gaussian-embed"}, {"K", 5}, {"dtype", "float64"}});  // analog bits, d = 3
  auto& g = dynamic_cast<const GaussianProcess&>(*p);
  const int64_t B = 16, L = 6;
  auto W = torch::randn({3, 5}, at::detail::createCPUGenerator(1), torch::kFloat64);  // a fixed "network"
  DenoiseFn f = [W](const torch::Tensor& in, const torch::Tensor& t) {
    return in.matmul(W) * (1.0 + t.view({-1, 1, 1}));  // [B, L, 5] logits
  };
  auto x0 = torch::randint(0, 5, {B, L}, at::detail::createCPUGenerator(2), torch::kLong);
  auto z0 = g.embed(x0);  // [B, L, 3]
  ASSERT_EQ(z0.sizes(), (std::vector<int64_t>{B, L, 3}));
  {
    auto obj = make_objective(ObjectiveOptions().name("weighted").weighting("likelihood").low_discrepancy(false), *p);
    auto g1 = at::detail::createCPUGenerator(7), g2 = at::detail::createCPUGenerator(7);
    auto loss = obj(*p, f, x0, g1).loss;  // [B]
    auto t = sample_train_times(*p, B, false, g2, torch::kCPU);
    auto xt = p->sample_xt(x0, t, g2);
    auto ref = sum_dims(p->elbo_integrand(x0, xt, t, predict(*p, f, xt, t))) / double(L);
    EXPECT_TRUE(torch::allclose(loss, ref, 1e-10, 1e-12)) << loss << ref;
  }
  {
    auto obj = make_objective(ObjectiveOptions().name("simple"), *p);
    auto g1 = at::detail::createCPUGenerator(8), g2 = at::detail::createCPUGenerator(8);
    auto loss = obj(*p, f, x0, g1).loss;  // [B]
    auto t = sample_train_times(*p, B, false, g2, torch::kCPU);
    auto xt = p->sample_xt(x0, t, g2);
    auto v = g.at(t, xt);  // [B, 1, 1]
    auto eps = (xt - v.alpha * z0) / v.sigma;                              // [B, L, 3]
    auto eps_hat = (xt - v.alpha * predict(*p, f, xt, t)) / v.sigma;     // [B, L, 3]
    auto ref = (eps - eps_hat).pow(2).reshape({B, -1}).mean(1);
    EXPECT_TRUE(torch::allclose(loss, ref, 1e-8, 1e-10)) << loss << ref;
  }
}

TEST(EmbeddedEndToEnd, GaussianEmbedOnMarkovBoundNearEntropy) {
  register_builtins();
  auto chain = data::MarkovChain::example(8);
  const int64_t K = chain.vocab();  // 4 symbols: analog bits d = 2
  nlohmann::json j = {
      {"process", {{"name", "gaussian-embed"}, {"K", K}, {"codebook", "analog-bits"}, {"steps", 0}}},
      {"model", {{"type", "transformer"}, {"input_dim", 2}, {"vocab_size", K}, {"out_dim", K}, {"dim", 64},
                 {"depth", 2}, {"num_heads", 4}, {"cond_dim", 32}, {"dropout", 0.0}, {"max_len", 8}}},
      {"data", {{"name", "toy-markov"}, {"n", 8000}, {"seq_len", 8}, {"batch_size", 128}, {"prefetch", 0}}},
      {"eval_data", {{"split", "test"}, {"n", 2000}}},
      {"objective", {{"name", "elbo"}, {"low_discrepancy", true}}},
      {"train", {{"steps", 600}, {"lr", 2e-3}, {"warmup_steps", 20}, {"log_every", 0}, {"checkpoint_every", 0},
                 {"ema_decay", 0.0}, {"seed", 3}}},
      {"eval", {{"exact", true}, {"time_samples", 32}, {"batch_size", 500}}}};
  auto cfg = parse_config(j);
  auto r = testing::train_and_score(cfg, "e2e_embed_markov");  // final training weights
  double H = chain.entropy_nats(), nats = r.mean_nats, nats_se = r.stderr_ * r.dims * std::log(2.0);
  std::cout << "gaussian-embed on toy-markov: bound " << nats << " +- " << nats_se << " nats, entropy " << H << "\n";
  EXPECT_EQ(r.dims, 8.0);  // bits per token: nats / (8 ln 2)
  // Uniform guessing scores 8 ln 4 = 11.1 nats; a bound cannot go below the entropy (beyond noise), and a model that
  // learnt no context cannot beat the sum of the stationary marginal entropies, 10.08 nats: the bound must lie
  // below that by 4 standard errors. (The trained bound moves with the platform's numerics more than with its
  // stderr: seed 3, 600 steps, measured 8.72 +- 0.10 on an EPYC, 9.00 +- 0.15 (LibTorch 2.13) and 9.09 +- 0.16
  // (1.13) on a Xeon, the same code; an earlier window H + 1.25 = 9.05, set from the first figure, failed there.)
  auto pi = chain.stationary();  // every position's marginal (stationary start)
  const double context_free = 8.0 * -(pi * torch::log(pi)).sum().item<double>();
  EXPECT_GT(nats, H - 4 * nats_se) << "bound " << nats << " entropy " << H;
  EXPECT_LT(nats, context_free - 4 * nats_se) << "bound " << nats << " context-free " << context_free;
}

}  // namespace
}  // namespace gsdiff
