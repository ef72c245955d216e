// gaussian-embed: codebooks, exact decoder = Bayes, closed-form terms, exact-denoiser ELBO vs entropy, registry.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "core/elbo.h"
#include "core/embedded_gaussian.h"
#include "core/options.h"
#include "core/registry.h"
#include "embedded_gaussian_test_util.h"
#include "test_util.h"

using namespace gsdiff;
using J = nlohmann::json;

namespace embed_test {
std::unique_ptr<EmbeddedGaussianProcess> make_embed(J cfg) {
  cfg["name"] = "gaussian-embed";
  auto p = make_process(cfg);
  auto* e = dynamic_cast<EmbeddedGaussianProcess*>(p.get());
  EXPECT_NE(e, nullptr);
  p.release();
  return std::unique_ptr<EmbeddedGaussianProcess>(e);
}
torch::Tensor times(int64_t n, double v) { return torch::full({n}, v, torch::kFloat64); }
}  // namespace embed_test
using embed_test::make_embed;
using embed_test::times;

class EmbeddedGaussianTest : public gsdiff::testing::Seeded {};

TEST_F(EmbeddedGaussianTest, CodebooksHaveTheStatedShapeEntriesAndDistinctEqualNormRows) {
  for (auto [K, d] : {std::pair<int64_t, int64_t>{2, 1}, {3, 2}, {4, 2}, {5, 3}, {27, 5}, {256, 8}}) {
    auto E = make_codebook("analog-bits", K, 2.0);
    ASSERT_EQ(E.sizes(), (std::vector<int64_t>{K, d})) << K;
    EXPECT_TRUE(torch::all(E.abs() == 2.0).item<bool>()) << K;
    // Reading the signs as bits gives back k: sum_b [e_k[b] > 0] 2^b = k (so the K rows are distinct).
    auto value = (E > 0).to(torch::kFloat64).matmul(torch::pow(2.0, torch::arange(d, torch::kFloat64)));  // [K]
    EXPECT_TRUE(torch::equal(value, torch::arange(K, torch::kFloat64))) << K;
    auto O = make_codebook("onehot", K, 1.5);
    EXPECT_TRUE(torch::equal(O, 1.5 * torch::eye(K, torch::kFloat64))) << K;
  }
  // Bit b of k is +scale: k = 6 = 0b110 on d = 5 bits.
  EXPECT_TRUE(torch::equal(make_codebook("analog-bits", 27)[6], torch::tensor({-1.0, 1.0, 1.0, -1.0, -1.0}, torch::kFloat64)));
}

TEST_F(EmbeddedGaussianTest, EveryCategoryRoundTripsThroughItsCodeAndThroughANoisyStateAtHighSnr) {
  for (std::string cb : {"analog-bits", "onehot"}) {
    auto p = make_embed({{"K", 27}, {"codebook", cb}, {"dtype", "float64"}});
    auto x0 = torch::arange(27, torch::kLong).repeat({200, 1});  // [200, 27]: every category, 200 times
    EXPECT_TRUE(torch::equal(p->to_data(p->embed(x0)), x0)) << cb;
    // z at t_min (log-SNR 6): the decoder's argmax and the nearest code both return x0.
    auto t = times(200, p->t_min());
    auto z = p->sample_xt(x0, t, gen);  // [200, 27, d]
    EXPECT_TRUE(torch::equal(p->decoder_log_probs(z, t).argmax(-1), x0)) << cb;
    EXPECT_TRUE(torch::equal(p->to_data(z), x0)) << cb;
    // A confident network output reads as the code itself.
    auto logits = 50.0 * torch::one_hot(x0, 27).to(torch::kFloat64);  // [200, 27, 27]
    EXPECT_TRUE(torch::allclose(p->read_output(logits, z, t), p->embed(x0), 1e-12, 1e-12)) << cb;
  }
}

TEST_F(EmbeddedGaussianTest, DecoderPosteriorNormalisesAndEqualsBayesByEnumeration) {
  for (std::string cb : {"analog-bits", "onehot"}) {
    auto p = make_embed({{"K", 5}, {"codebook", cb}, {"scale", 0.7}, {"dtype", "float64"}});
    const int64_t d = p->code_dim(), B = 4, L = 3;
    auto z = 1.3 * torch::randn({B, L, d}, gen, torch::kFloat64);
    auto t = torch::tensor({0.2, 0.45, 0.6, 0.9}, torch::kFloat64);
    auto logp = p->decoder_log_probs(z, t);  // [B, L, K]
    EXPECT_TRUE(torch::allclose(logp.exp().sum(-1), torch::ones({B, L}, torch::kFloat64), 1e-12, 1e-12)) << cb;
    auto E = p->codebook();
    for (int64_t b = 0; b < B; ++b) {
      auto v = p->schedule().at(t.slice(0, b, b + 1));
      double a = v.alpha.item<double>(), s = v.sigma.item<double>();
      for (int64_t l = 0; l < L; ++l) {
        // log of prior 1/K times the Gaussian density N(z; a e_k, s^2 I), normalised over k (Bayes' rule).
        std::vector<double> logj(5);
        double mx = -INFINITY, total = 0;
        for (int64_t k = 0; k < 5; ++k) {
          double sq = 0;
          for (int64_t j = 0; j < d; ++j) sq += std::pow(z[b][l][j].item<double>() - a * E[k][j].item<double>(), 2);
          logj[k] = std::log(0.2) - sq / (2 * s * s) - 0.5 * double(d) * std::log(2 * M_PI * s * s);
          mx = std::max(mx, logj[k]);
        }
        for (int64_t k = 0; k < 5; ++k) total += std::exp(logj[k] - mx);
        for (int64_t k = 0; k < 5; ++k)
          EXPECT_NEAR(std::exp(logp[b][l][k].item<double>()), std::exp(logj[k] - mx) / total, 1e-12)
              << cb << " b=" << b << " k=" << k;
      }
    }
  }
}

TEST_F(EmbeddedGaussianTest, ReconstructionVanishesAtHighSnrAndIsLogKAtLowSnr) {
  auto p = make_embed({{"K", 27}, {"dtype", "float64"}});
  auto x0 = torch::randint(0, 27, {64, 16}, gen, torch::kLong);
  auto hi = times(64, 0.0), lo = times(64, 1.0);  // log-SNR 6 and -10
  auto rec_hi = p->reconstruction(x0, p->sample_xt(x0, hi, gen), hi, {});
  EXPECT_LT(rec_hi.max().item<double>(), 1e-9);
  // At log-SNR -10 the codes sit alpha ~ 0.0067 apart against sigma ~ 1: the posterior is uniform to O(alpha).
  auto rec_lo = p->reconstruction(x0, p->sample_xt(x0, lo, gen), lo, {});
  EXPECT_NEAR(rec_lo.mean().item<double>(), std::log(27.0), 0.01);
}

TEST_F(EmbeddedGaussianTest, PriorKlIsTheClosedFormPerToken) {
  auto p = make_embed({{"K", 27}, {"logsnr_min", -4.0}, {"dtype", "float64"}});
  auto x0 = torch::randint(0, 27, {8, 10}, gen, torch::kLong);
  auto kl = p->prior_kl(x0);  // [8, 10]
  ASSERT_EQ(kl.sizes(), x0.sizes());
  // Analog bits: every entry is +-1, so each token has d = 5 dims of KL(N(a, s^2) || N(0, 1)), a^2 = sigmoid(-4).
  double a2 = 1.0 / (1.0 + std::exp(4.0)), s2 = 1.0 - a2;
  double per_dim = 0.5 * (a2 + s2 - 1.0 - std::log(s2));
  EXPECT_GT(per_dim, 0.0);
  EXPECT_TRUE(torch::allclose(kl, torch::full_like(kl, 5.0 * per_dim), 1e-10, 1e-12));
}

TEST_F(EmbeddedGaussianTest, StepKlIsTheKlOfTheTwoPosteriorsAndTendsToTheIntegrand) {
  for (std::string cb : {"analog-bits", "onehot"}) {
    auto p = make_embed({{"K", 4}, {"codebook", cb}, {"dtype", "float64"}});
    const int64_t B = 6, L = 3;
    auto x0 = torch::randint(0, 4, {B, L}, gen, torch::kLong);
    auto t = torch::rand({B}, gen, torch::kFloat64) * 0.8 + 0.1, s = t - 0.05;
    auto zt = p->sample_xt(x0, t, gen);
    auto x0_hat = p->read_output(torch::randn({B, L, 4}, gen, torch::kFloat64), zt, t);  // [B, L, d]
    auto kl = p->step_kl(x0, zt, s, t, x0_hat);  // [B, L]
    // KL(N(m1, v I) || N(m2, v I)) = ||m1 - m2||^2 / (2 v) from the Gaussian posterior (VDM eq. 8).
    auto [m1, v] = p->posterior(p->embed(x0), zt, s, t);
    auto m2 = p->posterior(x0_hat, zt, s, t).first;
    auto ref = ((m1 - m2).pow(2) / (2.0 * v)).sum(-1);
    EXPECT_TRUE(torch::allclose(kl, ref, 1e-8, 1e-12)) << cb;
    EXPECT_TRUE(torch::all(kl >= 0).item<bool>()) << cb;
    // Continuous-time limit: step_kl(t - h, t) / h -> elbo_integrand(t).
    const double h = 1e-6;
    auto fd = p->step_kl(x0, zt, t - h, t, x0_hat) / h;
    EXPECT_TRUE(torch::allclose(fd, p->elbo_integrand(x0, zt, t, x0_hat), 1e-4, 1e-10)) << cb;
  }
}

// With the exact denoiser E[e(x0) | z_t] (by enumeration over the 9 pairs), the continuous-time bound in
// expectation over the data is H + KL(q(z_1) || N(0, I)) + E KL(q(x0 | z_0) || decoder) (VDM sec. 3 / I-MMSE):
// never below the entropy H and at most H + E[prior term] + E[reconstruction term] above it. The time integral
// is Gauss-Legendre (64 nodes); z_t is one draw per row and node, so the comparison carries 4 standard errors.
TEST_F(EmbeddedGaussianTest, ExactDenoiserBoundMatchesTheEntropyOfAKnownTokenLaw) {
  const int64_t K = 3, reps = 1500;
  auto probs = gsdiff::testing::pair_probs().flatten();  // [9]
  const double H = -(probs * probs.log()).sum().item<double>();
  for (std::string cb : {"analog-bits", "onehot"}) {
    auto p = make_embed({{"K", K}, {"codebook", cb}, {"dtype", "float64"}, {"logsnr_max", 10.0}, {"logsnr_min", -10.0}});
    auto f = gsdiff::testing::exact_pair_denoiser(*p, gsdiff::testing::pair_probs());
    auto x0 = gsdiff::testing::all_pairs(K, reps);  // [9 reps, 2]
    auto terms = negative_elbo(*p, f, x0, gen, ElboOptions().exact(true).time_samples(64));
    auto per = terms.total().view({9, reps});  // [9, reps] nats per sequence
    auto mean = per.mean(1), var = per.var(1);  // [9]
    const double bound = (probs * mean).sum().item<double>();
    const double se = std::sqrt((probs * probs * var / double(reps)).sum().item<double>());
    const double slack = (probs * (terms.prior + terms.reconstruction).view({9, reps}).mean(1)).sum().item<double>();
    EXPECT_GE(bound, H - 4.0 * se) << cb << " bound " << bound << " H " << H << " se " << se;
    EXPECT_LE(bound, H + slack + 4.0 * se) << cb << " bound " << bound << " H " << H << " slack " << slack;
    EXPECT_LT(slack, 1e-3) << cb;  // log-SNR -10..10: the prior and decoder cost almost nothing
    std::cout << cb << ": exact-denoiser bound " << bound << " +- " << se << " nats, entropy " << H << ", slack " << slack << "\n";
    // Per sequence the bound also tracks -log p(x0), within the same statistical margin.
    auto se_c = (var / double(reps)).sqrt();
    EXPECT_TRUE(torch::all((mean + probs.log()).abs() <= 4.0 * se_c + 1e-3).item<bool>())
        << cb << "\nbound " << mean << "\n-log p " << -probs.log();
  }
}

// Discrete time on the same problem (T = 50, all 49 step KLs summed, reconstruction at t_1): the bound
// stays above the entropy and above the continuous-time bound (VDM sec. 3.3: fewer steps, larger loss).
TEST_F(EmbeddedGaussianTest, DiscreteTimeExactDenoiserBoundIsAboveEntropyAndContinuousTime) {
  const int64_t K = 3, reps = 1000;
  auto probs = gsdiff::testing::pair_probs().flatten();  // [9]
  const double H = -(probs * probs.log()).sum().item<double>();
  J cfg = {{"K", K}, {"dtype", "float64"}, {"logsnr_max", 10.0}, {"logsnr_min", -10.0}};
  auto stats = [&](const EmbeddedGaussianProcess& p, const ElboOptions& o) {
    auto f = gsdiff::testing::exact_pair_denoiser(p, gsdiff::testing::pair_probs());
    auto per = negative_elbo(p, f, gsdiff::testing::all_pairs(K, reps), gen, o).total().view({9, reps});
    return std::pair{(probs * per.mean(1)).sum().item<double>(),
                     (probs * probs * per.var(1) / double(reps)).sum().item<double>()};  // mean, se^2
  };
  cfg["steps"] = 50;
  auto [disc, v_d] = stats(*make_embed(cfg), ElboOptions().exact(true));
  cfg["steps"] = 0;
  auto [cont, v_c] = stats(*make_embed(cfg), ElboOptions().exact(true).time_samples(64));
  std::cout << "T = 50: " << disc << " +- " << std::sqrt(v_d) << ", continuous " << cont << " +- " << std::sqrt(v_c)
            << ", entropy " << H << "\n";
  EXPECT_GE(disc, H - 4.0 * std::sqrt(v_d));
  EXPECT_GE(disc, cont - 4.0 * std::sqrt(v_d + v_c));
}

TEST_F(EmbeddedGaussianTest, RegistryBuildsFromJsonAndRejectsUnknownCodebooksListingTheKnownOnes) {
  register_builtins();
  ASSERT_TRUE(ProcessRegistry::global().contains("gaussian-embed"));
  auto p = make_embed({{"K", 27}, {"codebook", "onehot"}, {"steps", 100}});
  EXPECT_EQ(p->num_categories(), 27);
  EXPECT_EQ(p->code_dim(), 27);
  EXPECT_EQ(p->steps(), 100);
  EXPECT_EQ(p->space(), Space::Continuous);
  auto again = make_process(p->options_json());  // the resolved options rebuild the same process
  EXPECT_EQ(again->options_json(), p->options_json());
  EXPECT_EQ(make_embed({})->code_dim(), 5);  // defaults: K = 27, analog bits
  try {
    make_process({{"name", "gaussian-embed"}, {"codebook", "gray"}});
    ADD_FAILURE() << "an unknown codebook must be rejected";
  } catch (const ConfigError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("'gray'"), std::string::npos) << m;
    EXPECT_NE(m.find("analog-bits"), std::string::npos) << m;
    EXPECT_NE(m.find("onehot"), std::string::npos) << m;
  }
  EXPECT_THROW(make_process({{"name", "gaussian-embed"}, {"parameterization", "eps"}}), ConfigError);
  EXPECT_THROW(make_process({{"name", "gaussian-embed"}, {"K", 1}}), ConfigError);
}
