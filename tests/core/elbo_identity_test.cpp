// The identities through negative_elbo itself (what `gsdiff eval` runs): exact and Monte-Carlo paths,
// every registered categorical process, discrete and continuous time.
#include <gtest/gtest.h>

#include "core/elbo.h"
#include "discrete_test_util.h"
#include "test_util.h"

using namespace gsdiff;
using namespace gsdiff::testing;
using J = nlohmann::json;
using torch::Tensor;

namespace {

Tensor identity_law(int64_t K) { return torch::arange(1, K + 1, torch::kFloat64) / double(K * (K + 1) / 2); }

// Every registered categorical process (small K), in discrete (T > 0) or continuous time (T = 0).
std::vector<J> every_categorical(int64_t T) {
  std::vector<J> v{J{{"name", "uniform"}, {"K", 3}, {"steps", T}},
                   J{{"name", "absorbing"}, {"K", 3}, {"steps", T}},
                   J{{"name", "absorbing"}, {"K", 3}, {"steps", T}, {"schedule", "cosine"}},
                   J{{"name", "blackout"}, {"K", 4}, {"steps", T}},
                   J{{"name", "rate-matrix"}, {"steps", T}, {"rates", {{-2.0, 1.5, 0.5}, {0.3, -1.0, 0.7}, {1.0, 1.0, -2.0}}}}};
  if (T > 0) v.push_back(J{{"name", "discretized-gaussian"}, {"K", 4}, {"steps", T}, {"beta_min", 0.5}, {"beta_max", 5.0}});
  return v;
}

}  // namespace

class ElboIdentityTest : public Seeded {};

// With the exact denoiser of i.i.d. dimensions with law px0 (under the Bayes parameterisation, the network
// that returns log px0), E over x_t of negative_elbo(x0) = sum_d -log px0(x0_d) + prior mismatch(x0_d).
// Each example's residual has mean 0; the test holds the batch mean to 5 standard errors (plus the
// reported quadrature error on the exact continuous path).
TEST_F(ElboIdentityTest, ExactDenoiserGivesMinusLogLikelihoodThroughNegativeElbo) {
  const int64_t B = 4000, L = 3;
  for (int64_t T : {int64_t(5), int64_t(0)}) {
    for (const auto& cfg : every_categorical(T)) {
      auto p = make_cat(cfg);
      const int64_t K = p->num_categories();
      auto px0 = identity_law(K);
      auto x0 = at::multinomial(px0, B * L, true, gen).reshape({B, L});  // [B, L]
      DenoiseFn f = [&](const Tensor& xt, const Tensor&) { return torch::log(px0).expand({xt.size(0), L, K}); };
      std::vector<double> per_value;  // -log px0(k) + mismatch(k)
      for (int64_t k = 0; k < K; ++k) per_value.push_back(-std::log(px0[k].item<double>()) + prior_mismatch(*p, px0, k));
      auto want = torch::tensor(per_value, torch::kFloat64).index({x0}).sum(1);  // [B]
      for (bool exact : {true, false}) {
        auto terms = negative_elbo(*p, f, x0, gen, ElboOptions().exact(exact).time_samples(2));
        auto resid = terms.total() - want;
        double se = resid.std().item<double>() / std::sqrt(double(B));
        EXPECT_NEAR(resid.mean().item<double>(), 0.0, 5 * se + terms.quadrature_error + 1e-9)
            << cfg.dump() << (exact ? " exact" : " monte-carlo") << " se " << se;
        if (exact) {
          EXPECT_TRUE(terms.converged) << cfg.dump() << " nodes " << terms.nodes << " err " << terms.quadrature_error;
          // The identity has power: without the reconstruction term (discrete time) or the diffusion term
          // (continuous time, where the reconstruction at t_min = 0 is 0) the mean misses by far more than that.
          auto part = T > 0 ? terms.reconstruction : terms.diffusion;
          EXPECT_GT(part.mean().item<double>(), 20 * se + terms.quadrature_error) << cfg.dump();
        }
      }
    }
  }
}
