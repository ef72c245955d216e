// End to end on toy sets: a tiny model's bound lands within a stated margin of the known entropy.
#include <gtest/gtest.h>

#include <cmath>

#include "core/registry.h"
#include "data/factory.h"
#include "data/toy.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace gsdiff {
namespace {

// Differential entropy of the GMM ring, -E[log p(x)], by Monte Carlo over 200k samples.
double gmm_entropy_mc(double* se) {
  auto spec = data::GmmSpec::ring(8, 2.0, 0.1);
  auto x = data::sample_gmm(200000, spec, at::detail::createCPUGenerator(99)).to(torch::kFloat64);  // [N,2]
  std::vector<torch::Tensor> comps;
  double wsum = 0;
  for (double w : spec.weights) wsum += w;
  for (size_t k = 0; k < spec.means.size(); ++k) {
    double s = spec.stds[k];
    auto d2 = (x.select(1, 0) - spec.means[k][0]).pow(2) + (x.select(1, 1) - spec.means[k][1]).pow(2);  // [N]
    comps.push_back(std::log(spec.weights[k] / wsum) - std::log(2 * M_PI * s * s) - d2 / (2 * s * s));
  }
  auto logp = torch::logsumexp(torch::stack(comps, 1), 1);  // [N]
  *se = logp.std().item<double>() / std::sqrt(double(logp.size(0)));
  return -logp.mean().item<double>();
}

TEST(ToyEndToEnd, GaussianOnGmmBoundNearEntropy) {
  register_builtins();
  testing::register_test_models();
  auto cfg = parse_config(testing::gmm_config(6000, 128));
  double se = 0, H = gmm_entropy_mc(&se);
  auto r = testing::train_and_score(cfg, "e2e_gmm");  // final training weights
  double nats = r.mean_nats, nats_se = r.stderr_ * r.dims * std::log(2.0);
  // A bound: not below the entropy (beyond noise); a trained model: within 0.75 nats of it.
  // A Gaussian fit would score ~3.5 nats; an ELBO missing a term or a factor misses this window.
  EXPECT_GT(nats, H - 4 * (se + nats_se)) << "bound " << nats << " entropy " << H;
  EXPECT_LT(nats, H + 0.75) << "bound " << nats << " entropy " << H;
}

TEST(ToyEndToEnd, AbsorbingOnMarkovBoundNearEntropy) {
  register_builtins();
  if (!ProcessRegistry::global().contains("absorbing")) GTEST_FAIL() << "process 'absorbing' is not registered";
  auto chain = data::MarkovChain::example(8);
  nlohmann::json j = {
      {"process", {{"name", "absorbing"}, {"K", chain.vocab()}, {"steps", 0}}},
      {"model", {{"type", "transformer"}, {"vocab_size", chain.vocab() + 1}, {"out_dim", chain.vocab()},
                 {"dim", 64}, {"depth", 2}, {"num_heads", 4}, {"cond_dim", 32}, {"dropout", 0.0}, {"max_len", 8}}},
      {"data", {{"name", "toy-markov"}, {"n", 8000}, {"seq_len", 8}, {"batch_size", 128}, {"prefetch", 0}}},
      {"eval_data", {{"split", "test"}, {"n", 2000}}},
      {"objective", {{"name", "elbo"}}},
      {"train", {{"steps", 600}, {"lr", 2e-3}, {"warmup_steps", 20}, {"log_every", 0}, {"checkpoint_every", 0},
                 {"ema_decay", 0.0}, {"seed", 3}}},
      {"eval", {{"exact", true}, {"time_samples", 32}, {"batch_size", 500}}}};
  auto cfg = parse_config(j);
  auto r = testing::train_and_score(cfg, "e2e_markov");  // final training weights
  double H = chain.entropy_nats(), nats = r.mean_nats, nats_se = r.stderr_ * r.dims * std::log(2.0);
  // Uniform guessing scores 8 ln 4 = 11.1 nats; the chain's entropy is far lower.
  EXPECT_GT(nats, H - 4 * nats_se) << "bound " << nats << " entropy " << H;
  EXPECT_LT(nats, H + 0.6) << "bound " << nats << " entropy " << H;
}

}  // namespace
}  // namespace gsdiff
