// sample_negative_elbo: the one-network-call training estimator is unbiased for the bound in both time modes.
#include <gtest/gtest.h>

#include "core/elbo.h"
#include "discrete_test_util.h"
#include "test_util.h"

using namespace gsdiff;
using namespace gsdiff::testing;
using J = nlohmann::json;
using torch::Tensor;

namespace {

Tensor law_of(int64_t K) { return torch::arange(1, K + 1, torch::kFloat64) / double(K * (K + 1) / 2); }

// The exact denoiser as a network: (x_t [B, 1], t [B]) -> log p(x0 | x_t) [B, 1, K] by Bayes over px0.
DenoiseFn exact_net(const CategoricalProcess& p, const Tensor& px0, int64_t* calls) {
  return [&p, px0, calls](const Tensor& xt, const Tensor& t) {
    ++*calls;
    const int64_t B = xt.size(0), K = p.num_categories();
    auto joint = px0.view({1, K, 1}) * p.qbar(t).narrow(1, 0, K);  // p(x0) q(x_t | x0)  [B, K, V]
    auto col = joint.gather(2, xt.view({B, 1, 1}).expand({B, K, 1}));  // [B, K, 1]
    auto post = col / col.sum(1, true).clamp_min(1e-300);
    return torch::log(post).permute({0, 2, 1});  // [B, 1, K]
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
