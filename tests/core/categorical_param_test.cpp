// The Bayes parameterisation of categorical denoisers: an integrable continuous-time integrand as t -> 0, a
// converging bound for a network whose error does not shrink with t, and absorbing unchanged.
#include <gtest/gtest.h>

#include "core/elbo.h"
#include "discrete_test_util.h"
#include "test_util.h"

using namespace gsdiff;
using namespace gsdiff::testing;
using J = nlohmann::json;
using torch::Tensor;

namespace {

// Continuous-time kernels that have a rate at every state (the ones where masked reading diverges).
std::vector<J> rate_kernels(const std::string& param) {
  return {J{{"name", "uniform"}, {"K", 3}, {"steps", 0}, {"parameterization", param}},
          J{{"name", "blackout"}, {"K", 4}, {"steps", 0}, {"parameterization", param}},
          J{{"name", "rate-matrix"}, {"steps", 0}, {"parameterization", param},
            {"rates", {{-2.0, 1.5, 0.5}, {0.3, -1.0, 0.7}, {1.0, 1.0, -2.0}}}}};
}

// A network like a trained one that has not learnt the t -> 0 limit: logits a fixed function of x_t alone.
Tensor fixed_logits(const Tensor& xt, int64_t K) {
  auto table = torch::sin(torch::arange(64, torch::kFloat64) * 1.7).reshape({8, 8}) * 2.0;  // [8, 8]
  return table.narrow(1, 0, K).index({xt});  // [B, ..., K]
}

// E over x_t of the integrand at time t for one x0, by enumerating x_t with weights q(x_t | x0).
double expected_integrand(const CategoricalProcess& p, int64_t x0, double t) {
  const int64_t V = p.num_states(), K = p.num_categories();
  auto xt = torch::arange(V).reshape({V, 1});
  auto tt = tfull(V, t);
  auto pred = p.read_output(fixed_logits(xt, K), xt, tt);
  auto f = p.elbo_integrand(torch::full({V, 1}, x0), xt, tt, pred).squeeze(1);  // [V]
  auto w = Qbar(p, t)[x0];
  return torch::where(w > 0, w * f, torch::zeros_like(f)).sum().item<double>();
}

}  // namespace

// Masked reading: t * integrand tends to a constant > 0 (a c / t integrand, a log-divergent bound).
// Bayes reading: t * integrand -> 0 (an integrable integrand) as t -> 0.
TEST(CategoricalParam, BayesReadingKeepsTheIntegrandIntegrableAsTGoesToZero) {
  for (const std::string param : {"masked", "bayes"}) {
    for (const auto& cfg : rate_kernels(param)) {
      auto p = make_cat(cfg);
      const int64_t x0 = 0;  // blackout: every x0' can die to 0, so the reading matters there
      double f4 = expected_integrand(*p, x0, 1e-4), f6 = expected_integrand(*p, x0, 1e-6), f8 = expected_integrand(*p, x0, 1e-8);
      if (param == "masked") {
        EXPECT_GT(f6, 50.0 * f4) << cfg.dump();
        EXPECT_NEAR(f8 * 1e-8, f6 * 1e-6, 0.01 * f6 * 1e-6) << cfg.dump();  // t * integrand -> c > 0
      } else {
        EXPECT_GT(f4, 0.0) << cfg.dump();
        // t * integrand -> 0: at most the log(1/t) growth that the exact denoiser's integrand has too
        // (from x_t != x0, probability ~ t, with q-ratio ~ 1/t), which is integrable.
        EXPECT_LT(f8 * 1e-8, 0.05 * f6 * 1e-6) << cfg.dump();
        EXPECT_LT(f8 - f6, 2.0 * std::log(100.0) * std::max(1.0, std::abs(f6 - f4))) << cfg.dump();
      }
    }
  }
}

// Through negative_elbo: with the Bayes reading the bound of this network converges as Gauss–Legendre nodes
// grow, and the adaptive quadrature meets its tolerance; with the masked reading it keeps growing.
TEST(CategoricalParam, BoundOfAnImperfectNetworkConvergesInNodes) {
  const int64_t B = 512, L = 4;
  for (const std::string param : {"masked", "bayes"}) {
    for (const auto& cfg : rate_kernels(param)) {
      auto p = make_cat(cfg);
      const int64_t K = p->num_categories();
      auto g0 = seeded(3);
      auto x0 = at::randint(0, K, {B, L}, g0);
      DenoiseFn f = [K](const Tensor& xt, const Tensor&) { return fixed_logits(xt, K); };
      std::vector<double> v;
      for (int64_t n : {8, 64, 256}) {
        auto gen = seeded(5);  // the same x_t noise for every rule
        v.push_back(negative_elbo(*p, f, x0, gen, ElboOptions().exact(true).quadrature_nodes(n)).diffusion.mean().item<double>());
      }
      if (param == "masked") {
        EXPECT_GT(v[2] - v[1], 0.3 * (v[1] - v[0])) << cfg.dump();  // still growing, about like log(nodes)
        EXPECT_GT(v[2] - v[1], 0.01 * v[2]) << cfg.dump();
      } else {
        EXPECT_LT(std::abs(v[2] - v[1]), 0.01 * v[2]) << cfg.dump() << " " << v[0] << " " << v[1] << " " << v[2];
        auto gen = seeded(5);
        auto ex = negative_elbo(*p, f, x0, gen, ElboOptions().exact(true));
        EXPECT_TRUE(ex.converged) << cfg.dump() << " err " << ex.quadrature_error;
        EXPECT_NEAR(ex.diffusion.mean().item<double>(), v[2], ex.quadrature_error + 0.01 * v[2]) << cfg.dump();
      }
    }
  }
}

// Absorbing: Bayes and masked readings are the same distribution (MDLM's carry-over).
TEST(CategoricalParam, AbsorbingReadingsAgree) {
  auto gen = seeded(9);
  auto pb = make_cat(J{{"name", "absorbing"}, {"K", 5}, {"steps", 0}});
  auto pm = make_cat(J{{"name", "absorbing"}, {"K", 5}, {"steps", 0}, {"parameterization", "masked"}});
  auto x0 = at::randint(0, 5, {64, 7}, gen);
  auto t = at::rand({64}, gen, torch::kFloat64) * 0.98 + 0.01;
  auto xt = pb->sample_xt(x0, t, gen);
  auto out = at::randn({64, 7, 5}, gen, torch::kFloat64);
  EXPECT_TRUE(torch::allclose(pb->read_output(out, xt, t).exp(), pm->read_output(out, xt, t).exp(), 1e-12, 1e-14));
}
