// sample_negative_elbo: the one-network-call training estimator is unbiased for the bound in both time modes.
#include <gtest/gtest.h>

#include "core/elbo.h"
#include "core/gaussian.h"
#include "core/registry.h"
#include "discrete_test_util.h"
#include "test_util.h"

using namespace gsdiff;
using namespace gsdiff::testing;
using J = nlohmann::json;
using torch::Tensor;

namespace {

Tensor law_of(int64_t K) { return torch::arange(1, K + 1, torch::kFloat64) / double(K * (K + 1) / 2); }

// The exact denoiser as a network (x_t [B, 1], t [B]) -> [B, 1, K]: under the Bayes parameterisation
// (read_output multiplies by q(x_t | x0)) it returns log px0, and read_output makes p(x0 | x_t) by Bayes.
DenoiseFn exact_net(const CategoricalProcess& p, const Tensor& px0, int64_t* calls) {
  return [&p, px0, calls](const Tensor& xt, const Tensor&) {
    ++*calls;
    return torch::log(px0).view({1, 1, p.num_categories()}).expand({xt.size(0), 1, p.num_categories()});
  };
}

struct MeanSe {
  double mean, se;
};
MeanSe stats(const Tensor& v) {
  return {v.mean().item<double>(), v.std().item<double>() / std::sqrt(double(v.numel()))};
}

}  // namespace

class ElboSampleTest : public Seeded {};

// Exact denoiser: every one-call estimate averages to -log p(x0) + prior mismatch (the closed form).
TEST_F(ElboSampleTest, ExactDenoiserAveragesToTheClosedForm) {
  const int64_t B = 40000;
  for (auto cfg : {J{{"name", "uniform"}, {"K", 3}, {"steps", 5}}, J{{"name", "absorbing"}, {"K", 3}, {"steps", 0}},
                   J{{"name", "blackout"}, {"K", 4}, {"steps", 7}}}) {
    auto p = make_cat(cfg);
    auto px0 = law_of(p->num_categories());
    for (int64_t x0v : {0, 2}) {
      int64_t calls = 0;
      auto x0 = torch::full({B, 1}, x0v);
      auto s = sample_negative_elbo(*p, exact_net(*p, px0, &calls), x0, gen, 0.25);
      auto m = stats(s.terms.total());
      double want = -std::log(px0[x0v].item<double>()) + prior_mismatch(*p, px0, x0v);
      EXPECT_EQ(calls, 1) << cfg.dump();
      EXPECT_NEAR(m.mean, want, 5 * m.se + 1e-9) << cfg.dump() << " x0=" << x0v << " se=" << m.se;
    }
  }
}

// An imperfect denoiser: the one-call mean equals the all-terms bound (discrete: every KL term summed; continuous:
// Gauss-Legendre in t), both Monte Carlo over x_t only, within their joint standard error.
TEST_F(ElboSampleTest, ImperfectDenoiserMatchesTheAllTermsBound) {
  const int64_t B = 20000;
  for (auto cfg : {J{{"name", "uniform"}, {"K", 3}, {"steps", 6}}, J{{"name", "uniform"}, {"K", 3}, {"steps", 0}},
                   J{{"name", "absorbing"}, {"K", 4}, {"steps", 0}, {"schedule", "cosine"}}}) {
    auto p = make_cat(cfg);
    int64_t calls = 0;
    // The exact denoiser of another data law: imperfect for x0, so the terms do not telescope to a closed form.
    auto net = exact_net(*p, law_of(p->num_categories()).flip(0), &calls);
    auto x0 = torch::full({B, 1}, int64_t(1));
    auto one = stats(sample_negative_elbo(*p, net, x0, gen, 0.2).terms.total());
    EXPECT_EQ(calls, 1);
    auto all = stats(negative_elbo(*p, net, x0, gen, ElboOptions().exact(true).time_samples(48)).total());
    double se = std::sqrt(one.se * one.se + all.se * all.se);
    EXPECT_NEAR(one.mean, all.mean, 5 * se) << cfg.dump() << " one=" << one.mean << " all=" << all.mean;
  }
}

// The returned (t, x_t, pred) are the ones the terms were scored at: reconstruction rows sit at the first
// grid time (discrete) or t_min (continuous), and x_t is reachable from x0 at that t.
TEST_F(ElboSampleTest, ReturnsTheTimesItScoredAt) {
  auto p = make_cat(J{{"name", "absorbing"}, {"K", 3}, {"steps", 4}});
  int64_t calls = 0;
  auto x0 = torch::full({2000, 1}, int64_t(2));
  auto s = sample_negative_elbo(*p, exact_net(*p, law_of(3).flip(0), &calls), x0, gen);
  auto grid = torch::round(s.t * 4.0);
  EXPECT_TRUE(torch::allclose(grid / 4.0, s.t));
  EXPECT_EQ(grid.min().item<double>(), 1.0);
  EXPECT_EQ(grid.max().item<double>(), 4.0);
  // Absorbing: x_t is x0 or the mask (K = 3).
  EXPECT_TRUE(((s.xt == 2) | (s.xt == 3)).all().item<bool>());
  // Rows at i = 1 carry the reconstruction (weight T), the others none.
  auto rec_rows = (grid == 1.0);
  EXPECT_TRUE((s.terms.reconstruction.masked_select(rec_rows.logical_not()) == 0).all().item<bool>());
  EXPECT_TRUE((s.terms.diffusion.masked_select(rec_rows) == 0).all().item<bool>());
  EXPECT_TRUE((s.terms.reconstruction.masked_select(rec_rows) >= 0).all().item<bool>());
  EXPECT_GT(s.terms.reconstruction.sum().item<double>(), 0.0);  // some masked x_t at i = 1 cost bits
}

// Gaussian processes with t_min > 0, where the reconstruction weight 1/q multiplies a real term: the one-call
// mean equals the all-terms bound (negative_elbo, exact: converged quadrature) within 5 joint standard errors.
TEST_F(ElboSampleTest, GaussianOneCallEstimateIsUnbiasedWithTminAboveZero) {
  const int64_t B = 40000;
  std::vector<J> cfgs{J{{"name", "gaussian-vp"}, {"schedule", "linear-logsnr"}, {"steps", 0}, {"t_min", 0.05}},
                      J{{"name", "gaussian-vp"}, {"schedule", "cosine"}, {"steps", 0}, {"t_min", 0.02}},
                      J{{"name", "gaussian-ve"}, {"steps", 0}, {"t_min", 0.1}},
                      J{{"name", "gaussian-embed"}, {"K", 3}, {"steps", 0}, {"t_min", 0.3}}};
  for (const auto& cfg : cfgs) {
    auto proc = make_process(cfg);
    auto& g = dynamic_cast<const GaussianProcess&>(*proc);
    const bool tokens = proc->num_categories() > 0;
    // Data: 8-bit levels in [-1, 1] (continuous) or tokens (embed); the model a fixed imperfect map of x_t.
    auto x0 = tokens ? at::randint(0, 3, {B, 2}, gen) : (at::randint(0, 256, {B, 2}, gen).to(torch::kFloat64) / 127.5 - 1.0);
    int64_t calls = 0;
    DenoiseFn net = [&](const Tensor& in, const Tensor& t) {
      ++calls;
      if (tokens) return in.sum(-1, true).mul(0.7).expand({in.size(0), in.size(1), 3}) * torch::tensor({-1.0, 0.2, 1.0}, torch::kFloat64);
      auto v = g.at(t, in);
      return 0.8 * in - 0.1 * v.sigma;  // eps-parameterised output, imperfect at every t
    };
    auto one = sample_negative_elbo(g, net, x0, gen, 0.25, false);
    EXPECT_EQ(calls, 1) << cfg.dump();
    auto r1 = one.terms.reconstruction;
    EXPECT_GT(r1.abs().sum().item<double>(), 0.0) << cfg.dump();  // the reconstruction rows carry weight 1/q
    auto m1 = stats(one.terms.total());
    auto all = negative_elbo(g, net, x0.narrow(0, 0, 4000), gen, ElboOptions().exact(true));
    auto m2 = stats(all.total());
    double se = std::sqrt(m1.se * m1.se + m2.se * m2.se);
    EXPECT_NEAR(m1.mean, m2.mean, 5 * se + all.quadrature_error) << cfg.dump() << " one=" << m1.mean << " all=" << m2.mean;
  }
}

// Non-uniform proposals (OneCallOptions): a binned law over the terms (iDDPM's loss-aware sampler proposes one) and
// log-SNR time sampling, each importance-weighted by 1 / P: the one-call mean still equals the all-terms bound.
TEST_F(ElboSampleTest, BinnedAndLogSnrProposalsStayUnbiased) {
  const int64_t B = 40000;
  auto skewed = [](int64_t n) { auto w = torch::arange(1, n + 1, torch::kFloat64).pow(2); return w / w.sum(); };
  struct Case { J cfg; OneCallOptions o; };
  std::vector<Case> cases{
      {J{{"name", "uniform"}, {"K", 3}, {"steps", 6}}, OneCallOptions().bin_probs(skewed(6))},
      {J{{"name", "uniform"}, {"K", 3}, {"steps", 0}}, OneCallOptions().reconstruction_prob(0.2).bin_probs(skewed(8))},
      {J{{"name", "gaussian-vp"}, {"schedule", "linear-logsnr"}, {"steps", 0}, {"t_min", 0.05}},
       OneCallOptions().reconstruction_prob(0.25).time_sampling("logsnr")},
      {J{{"name", "gaussian-vp"}, {"schedule", "linear-beta-discrete"}, {"steps", 20}}, OneCallOptions().time_sampling("logsnr")},
      {J{{"name", "gaussian-vp"}, {"schedule", "cosine"}, {"steps", 0}, {"t_min", 0.02}},
       OneCallOptions().reconstruction_prob(0.25).low_discrepancy(true).bin_probs(skewed(16).flip(0))}};
  for (const auto& c : cases) {
    auto proc = make_process(c.cfg);
    const bool gaussian = dynamic_cast<const GaussianProcess*>(proc.get()) != nullptr;
    Tensor x0;
    DenoiseFn net;
    int64_t calls = 0;
    if (gaussian) {
      auto& g = dynamic_cast<const GaussianProcess&>(*proc);
      x0 = at::randint(0, 256, {B, 2}, gen).to(torch::kFloat64) / 127.5 - 1.0;
      net = [&g, &calls](const Tensor& in, const Tensor& t) { ++calls; return 0.8 * in - 0.1 * g.at(t, in).sigma; };
    } else {
      auto& p = dynamic_cast<const CategoricalProcess&>(*proc);
      x0 = torch::full({B, 1}, int64_t(1));
      net = exact_net(p, law_of(3).flip(0), &calls);  // another law's exact denoiser: imperfect for x0
    }
    auto s = sample_negative_elbo(*proc, net, x0, gen, c.o);
    EXPECT_EQ(calls, 1) << c.cfg.dump();
    auto one = stats(s.terms.total());
    auto all_terms = negative_elbo(*proc, net, x0.narrow(0, 0, gaussian ? 4000 : B), gen, ElboOptions().exact(true));
    auto all = stats(all_terms.total());
    double se = std::sqrt(one.se * one.se + all.se * all.se);
    EXPECT_NEAR(one.mean, all.mean, 5 * se + all_terms.quadrature_error) << c.cfg.dump() << " one=" << one.mean << " all=" << all.mean;
  }
}

// A binned proposal draws bin k with probability P_k (binomial counts within 5 sd), reports it, and weighs the
// term by 1 / P_k (discrete time) or by the inverse density width / (P_k (1 - q)) with t inside bin k (continuous).
TEST_F(ElboSampleTest, BinnedProposalDrawsEachBinWithItsProbabilityAndWeight) {
  const int64_t B = 20000;
  auto probs = torch::tensor({0.1, 0.2, 0.3, 0.4}, torch::kFloat64);
  int64_t calls = 0;
  auto x0 = torch::full({B, 1}, int64_t(0));
  for (int64_t steps : {4, 0}) {
    auto p = make_cat(J{{"name", "absorbing"}, {"K", 3}, {"steps", steps}});
    const double q = 0.25;
    auto s = sample_negative_elbo(*p, exact_net(*p, law_of(3), &calls), x0, gen,
                                  OneCallOptions().reconstruction_prob(q).bin_probs(probs));
    auto diff_rows = s.bin >= 0;
    const double n = steps ? double(B) : diff_rows.sum().item<double>();
    if (!steps) EXPECT_NEAR(n / B, 1 - q, 5 * std::sqrt(q * (1 - q) / B));
    for (int64_t k = 0; k < 4; ++k) {
      auto in_k = s.bin == k;
      const double pk = probs[k].item<double>();
      EXPECT_NEAR(in_k.sum().item<double>() / n, pk, 5 * std::sqrt(pk * (1 - pk) / n)) << "steps " << steps << " bin " << k;
      auto w = s.weight.masked_select(in_k), t = s.t.masked_select(in_k);
      if (steps) {
        EXPECT_TRUE(torch::allclose(w, torch::full_like(w, 1.0 / pk))) << k;
        EXPECT_TRUE(torch::allclose(t, torch::full_like(t, double(k + 1) / steps))) << k;
      } else {
        const double width = (1.0 - p->t_min()) / 4.0;
        EXPECT_TRUE(torch::allclose(w, torch::full_like(w, width / (pk * (1 - q))))) << k;
        EXPECT_GE(t.min().item<double>(), p->t_min() + k * width) << k;
        EXPECT_LE(t.max().item<double>(), p->t_min() + (k + 1) * width) << k;
      }
    }
    if (!steps) {  // reconstruction rows: bin -1, t_min, weight 1 / q
      auto w = s.weight.masked_select(diff_rows.logical_not());
      EXPECT_TRUE(torch::allclose(w, torch::full_like(w, 1.0 / q)));
      EXPECT_TRUE(s.reconstruction_rows.equal(diff_rows.logical_not()));
    }
  }
}
