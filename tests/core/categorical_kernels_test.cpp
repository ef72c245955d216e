// Discrete kernels: stochastic rows, Chapman–Kolmogorov, master equation, Bayes posterior, forward sampling.
#include <gtest/gtest.h>

#include "core/dense_kernels.h"
#include "core/mixture_kernels.h"
#include "discrete_test_util.h"
#include "test_util.h"

using namespace gsdiff;
using namespace gsdiff::testing;
using J = nlohmann::json;
using torch::Tensor;

namespace {
J ring3() { return J{{"name", "rate-matrix"}, {"rates", {{-2.0, 1.5, 0.5}, {0.3, -1.0, 0.7}, {1.0, 1.0, -2.0}}}}; }
std::vector<J> continuous_configs() {
  return {J{{"name", "uniform"}, {"K", 4}},
          J{{"name", "absorbing"}, {"K", 4}, {"schedule", "cosine"}},
          J{{"name", "absorbing"}, {"K", 3}, {"schedule", {{"type", "log-linear"}}}},
          J{{"name", "blackout"}, {"K", 5}, {"schedule", {{"type", "exponential"}, {"rate", 3.0}}}},
          ring3()};
}
}  // namespace

class CategoricalKernels : public Seeded {};

TEST_F(CategoricalKernels, RowsStochasticAndChapmanKolmogorov) {
  auto cfgs = continuous_configs();
  cfgs.push_back(J{{"name", "discretized-gaussian"}, {"K", 6}, {"steps", 10}});
  for (auto& cfg : cfgs) {
    auto p = make_cat(cfg);
    bool dg = cfg["name"] == "discretized-gaussian";
    for (auto [s, t] : {std::pair{0.2, 0.5}, {0.5, 0.9}, {0.1, 1.0}}) {
      auto Qs = Qbar(*p, s), Qt = Qbar(*p, t), Qts = p->qstep(tfull(1, s), tfull(1, t))[0];
      auto ones = torch::ones({p->num_states()}, torch::kFloat64);
      EXPECT_TRUE(torch::allclose(Qt.sum(1), ones, 1e-10, 1e-10)) << cfg.dump();
      EXPECT_TRUE(torch::allclose(Qts.sum(1), ones, 1e-10, 1e-10)) << cfg.dump();
      EXPECT_GE(Qt.min().item<double>(), -1e-12) << cfg.dump();
      EXPECT_TRUE(torch::allclose(Qs.mm(Qts), Qt, 1e-9, 1e-10)) << cfg.dump() << " s=" << s << " t=" << t;
      if (dg) break;
    }
  }
}

TEST_F(CategoricalKernels, MasterEquationByFiniteDifferences) {
  for (auto& cfg : continuous_configs()) {
    auto p = make_cat(cfg);
    for (double t : {0.1, 0.4, 0.8}) {
      const double h = 1e-6;
      auto dQ = (Qbar(*p, t + h) - Qbar(*p, t - h)) / (2 * h);
      auto rhs = Qbar(*p, t).mm(p->rate(tfull(1, t))[0]);
      EXPECT_TRUE(torch::allclose(dQ, rhs, 1e-5, 1e-6)) << cfg.dump() << " t=" << t;
      EXPECT_TRUE(torch::allclose(p->rate(tfull(1, t))[0].sum(1), torch::zeros({p->num_states()}, torch::kFloat64), 0, 1e-9));
    }
  }
}

TEST_F(CategoricalKernels, PosteriorEqualsBayesByEnumeration) {
  auto cfgs = continuous_configs();
  for (auto& cfg : cfgs) {
    auto p = make_cat(cfg);
    const int64_t V = p->num_states(), K = p->num_categories();
    double s = 0.3, t = 0.6;
    auto Qs = Qbar(*p, s), Qt = Qbar(*p, t), Qts = p->qstep(tfull(1, s), tfull(1, t))[0];
    for (int64_t x0 = 0; x0 < K; ++x0)
      for (int64_t xt = 0; xt < V; ++xt) {
        if (Qt[x0][xt].item<double>() <= 0) continue;
        // q(x_s | x_t, x0) = q(x_s | x0) q(x_t | x_s) / q(x_t | x0), each entry by hand
        std::vector<double> bayes(V);
        for (int64_t xs = 0; xs < V; ++xs)
          bayes[xs] = Qs[x0][xs].item<double>() * Qts[xs][xt].item<double>() / Qt[x0][xt].item<double>();
        auto got = p->posterior_probs(torch::full({1, 1}, x0), torch::full({1, 1}, xt), tfull(1, s), tfull(1, t))[0][0];
        EXPECT_TRUE(torch::allclose(got, torch::tensor(bayes, torch::kFloat64), 1e-10, 1e-12)) << cfg.dump();
      }
  }
}

TEST_F(CategoricalKernels, ForwardSamplesMatchQbarChiSquare) {
  const int64_t n = 20000;
  for (auto& cfg : continuous_configs()) {
    auto p = make_cat(cfg);
    const int64_t V = p->num_states();
    int64_t x0 = p->num_categories() - 1;
    auto xt = p->sample_xt(torch::full({n, 1}, x0), tfull(n, 0.5), gen);
    auto counts = torch::bincount(xt.flatten(), {}, V).to(torch::kFloat64);
    auto expect = Qbar(*p, 0.5)[x0] * double(n);
    auto used = expect > 0;
    EXPECT_EQ(counts.masked_select(~used).sum().item<double>(), 0.0) << cfg.dump();  // nothing outside the support
    auto chi2 = ((counts - expect).square() / expect).masked_select(used).sum().item<double>();
    double df = used.sum().item<double>() - 1;
    EXPECT_LT(chi2, df + 6 * std::sqrt(2 * df) + 1) << cfg.dump();  // mean df, sd sqrt(2 df)
  }
}

TEST_F(CategoricalKernels, BlackoutMarginalsMatchDeathProcessSimulation) {
  // Each individual dies at the first time int_0^t mu > E, E ~ Exp(1); alive at t iff B(t) < E.
  auto p = make_cat(J{{"name", "blackout"}, {"K", 6}, {"schedule", {{"type", "exponential"}, {"rate", 2.0}}}});
  auto& sched = dynamic_cast<BlackoutProcess&>(*p);
  const int64_t n = 50000, x0 = 5;
  double t = 0.4, B = 2.0 * t;
  auto E = -torch::log(at::rand({n, x0}, gen, torch::kFloat64));
  auto alive = (E > B).sum(1);
  auto counts = torch::bincount(alive, {}, 6).to(torch::kFloat64) / double(n);
  auto row = Qbar(sched, t)[x0];
  for (int k = 0; k < 6; ++k) {
    double pk = row[k].item<double>();
    EXPECT_NEAR(counts[k].item<double>(), pk, mc_tol(std::sqrt(pk * (1 - pk)), n) + 1e-9) << k;
  }
  EXPECT_NEAR(row[0].item<double>(), std::pow(1 - std::exp(-B), 5), 1e-12);  // Bin(5, e^{-B}) at 0
}

TEST_F(CategoricalKernels, RateMatrixWithUniformGeneratorReproducesUniform) {
  const int64_t K = 4;
  std::vector<std::vector<double>> R(K, std::vector<double>(K, 1.0 / K));
  for (int64_t i = 0; i < K; ++i) R[i][i] -= 1.0;
  auto sched = J{{"type", "log-linear"}, {"eps", 0.01}};
  auto rm = make_cat(J{{"name", "rate-matrix"}, {"rates", R}, {"schedule", sched}});
  auto un = make_cat(J{{"name", "uniform"}, {"K", K}, {"schedule", sched}});
  for (double t : {0.0, 0.3, 0.9, 1.0}) EXPECT_TRUE(torch::allclose(Qbar(*rm, t), Qbar(*un, t), 1e-10, 1e-12)) << t;
  EXPECT_TRUE(torch::allclose(rm->prior_probs(), un->prior_probs(), 1e-10, 1e-12));
  auto x0 = at::randint(0, K, {8, 3}, gen), xt = at::randint(0, K, {8, 3}, gen);
  auto logp = torch::log_softmax(at::randn({8, 3, K}, gen, torch::kFloat64), -1);
  auto t = tfull(8, 0.45), s = tfull(8, 0.2);
  EXPECT_TRUE(torch::allclose(rm->elbo_integrand(x0, xt, t, logp), un->elbo_integrand(x0, xt, t, logp), 1e-8, 1e-10));
  EXPECT_TRUE(torch::allclose(rm->step_kl(x0, xt, s, t, logp), un->step_kl(x0, xt, s, t, logp), 1e-8, 1e-10));
}

TEST(CategoricalErrors, RateMatrixNamesRowAndRule) {
  auto msg = [](const J& cfg) {
    try {
      make_process(cfg);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg(J{{"name", "rate-matrix"}, {"rates", {{-1.0, 1.0}, {0.5, -0.4}}}}).find("row 1: rows of a generator must sum to 0"), std::string::npos);
  EXPECT_NE(msg(J{{"name", "rate-matrix"}, {"rates", {{1.0, -1.0}, {0.5, -0.5}}}}).find("row 0, column 1: off-diagonal rates must be >= 0"), std::string::npos);
  EXPECT_NE(msg(J{{"name", "rate-matrix"}, {"rates", {{-1.0, 1.0}, {0.5}}}}).find("row 1 of 'rates' must have 2 entries"), std::string::npos);
  EXPECT_NE(msg(J{{"name", "rate-matrix"}, {"file", "/nonexistent/k.json"}}).find("cannot be opened"), std::string::npos);
  EXPECT_NE(msg(J{{"name", "discretized-gaussian"}, {"steps", 0}}).find("'steps' must be >= 1"), std::string::npos);
  EXPECT_NE(msg(J{{"name", "absorbing"}, {"schedule", "quadratic"}}).find("must be one of linear, log-linear, cosine, exponential"), std::string::npos);
  EXPECT_NE(msg(J{{"name", "unifrom"}}).find("known processes: "), std::string::npos);
  EXPECT_EQ(msg(J{{"name", "rate-matrix"}, {"file", std::string(GSDIFF_SOURCE_DIR) + "/configs/kernels/ring5.json"}}), "no error");
}

TEST(CategoricalMemory, D3pmTablesForK256T1000StayUnder300MB) {
  auto p = make_process(J{{"name", "discretized-gaussian"}, {"K", 256}, {"steps", 1000}});
  auto& c = dynamic_cast<CategoricalProcess&>(*p);
  EXPECT_LT(c.grid_table_bytes(), 300ll << 20);
  EXPECT_EQ(c.grid_table_bytes(), 1001ll * 256 * 256 * 4);
  auto row_sums = c.grid_table()[1000].sum(1);  // still stochastic after 1000 products in float32
  EXPECT_TRUE(torch::allclose(row_sums, torch::ones_like(row_sums), 1e-4, 1e-4));
}
