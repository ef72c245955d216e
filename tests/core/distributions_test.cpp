// Distributions: closed-form KL and entropy against Monte Carlo, KL >= 0, seeded sampling.
#include <gtest/gtest.h>

#include "core/distributions.h"
#include "test_util.h"

using namespace gsdiff;
using gsdiff::testing::mc_tol;

class Distributions : public gsdiff::testing::Seeded {};

TEST_F(Distributions, GaussianKlMatchesMonteCarloAndIsNonNegative) {
  auto o = torch::kFloat64;
  DiagGaussian p(torch::tensor({0.3, -1.0}, o), torch::tensor({-0.2, 0.4}, o));
  DiagGaussian q(torch::tensor({-0.5, 0.0}, o), torch::tensor({0.1, 0.0}, o));
  const int64_t n = 400000;
  auto x = p.mean + torch::exp(p.log_std) * at::randn({n, 2}, gen, o);
  auto lr = p.log_prob(x) - q.log_prob(x);  // [n, 2]
  auto mc = lr.mean(0), sd = lr.std(0);
  auto kl = p.kl(q);
  for (int d = 0; d < 2; ++d) EXPECT_NEAR(kl[d].item<double>(), mc[d].item<double>(), mc_tol(sd[d].item<double>(), n));
  EXPECT_TRUE((kl > 0).all().item<bool>());
  EXPECT_NEAR(p.kl(p).abs().max().item<double>(), 0.0, 1e-12);
  // Entropy = -E[log p].
  auto ent = -p.log_prob(x);
  for (int d = 0; d < 2; ++d)
    EXPECT_NEAR(p.entropy()[d].item<double>(), ent.mean(0)[d].item<double>(), mc_tol(ent.std(0)[d].item<double>(), n));
}

TEST_F(Distributions, CategoricalKlEntropyAndSampling) {
  auto o = torch::kFloat64;
  auto pp = torch::tensor({0.5, 0.25, 0.25, 0.0}, o);
  auto qq = torch::tensor({0.1, 0.2, 0.3, 0.4}, o);
  auto p = Categorical::from_probs(pp), q = Categorical::from_probs(qq);
  double kl = 0.5 * std::log(5.0) + 0.25 * std::log(1.25) + 0.25 * std::log(0.25 / 0.3);
  EXPECT_NEAR(p.kl(q).item<double>(), kl, 1e-12);
  EXPECT_NEAR(categorical_kl_probs(pp, qq).item<double>(), kl, 1e-12);
  EXPECT_NEAR(p.entropy().item<double>(), 1.5 * std::log(2.0), 1e-12);
  // Frequencies of 200k draws: each within 5 binomial standard errors; the zero-mass state never drawn.
  const int64_t n = 200000;
  auto x = sample_categorical(pp.expand({n, 4}), gen);
  auto counts = torch::bincount(x, {}, 4).to(o) / double(n);
  for (int k = 0; k < 4; ++k) {
    double pk = pp[k].item<double>();
    EXPECT_NEAR(counts[k].item<double>(), pk, mc_tol(std::sqrt(pk * (1 - pk)), n) + 1e-12);
  }
  EXPECT_EQ(counts[3].item<double>(), 0.0);
}

TEST_F(Distributions, SamplingIsDeterministicForAGenerator) {
  auto probs = torch::full({1000, 5}, 0.2);
  auto g1 = gsdiff::testing::seeded(7), g2 = gsdiff::testing::seeded(7);
  EXPECT_TRUE(torch::equal(sample_categorical(probs, g1), sample_categorical(probs, g2)));
  DiagGaussian d(torch::zeros({100}), torch::zeros({100}));
  auto g3 = gsdiff::testing::seeded(9), g4 = gsdiff::testing::seeded(9);
  EXPECT_TRUE(torch::equal(d.sample(g3), d.sample(g4)));
}
