// Discrete ELBO: the exact denoiser's bound equals -log p(x0) + prior mismatch; closed forms = generic; T -> inf.
#include <gtest/gtest.h>

#include "core/mixture_kernels.h"
#include "discrete_test_util.h"
#include "test_util.h"

using namespace gsdiff;
using namespace gsdiff::testing;
using J = nlohmann::json;
using torch::Tensor;

namespace {

// A denoiser for one dimension: (x_t [V], t) -> log p(x0 | x_t) [V, K] (before support masking).
using Denoiser1D = std::function<Tensor(double t)>;

// Negative ELBO of one x0, with every expectation over x_t summed exactly by enumeration.
double nelbo_discrete(const CategoricalProcess& p, const Denoiser1D& den, int64_t x0) {
  const int64_t V = p.num_states(), T = p.steps();
  auto xt = torch::arange(V).reshape({V, 1});  // every state, one dimension
  auto x0b = torch::full({V, 1}, x0);
  double total = p.prior_kl(torch::full({1, 1}, x0)).sum().item<double>();
  for (int64_t i = 1; i <= T; ++i) {
    double t = double(i) / T, s = double(i - 1) / T;
    auto w = Qbar(p, t)[x0];  // q(x_t | x0) [V]
    auto pred = p.read_output(den(t).unsqueeze(1), xt, tfull(V, t));  // [V, 1, K]
    auto term = i == 1 ? p.reconstruction(x0b, xt, tfull(V, t), pred) : p.step_kl(x0b, xt, tfull(V, s), tfull(V, t), pred);
    total += torch::where(w > 0, w * term.squeeze(1), torch::zeros_like(w)).sum().item<double>();
  }
  return total;
}

double nelbo_continuous(const CategoricalProcess& p, const Denoiser1D& den, int64_t x0, bool generic = false) {
  const int64_t V = p.num_states();
  auto xt = torch::arange(V).reshape({V, 1});
  auto x0b = torch::full({V, 1}, x0);
  double total = p.prior_kl(torch::full({1, 1}, x0)).sum().item<double>();
  for (auto [t, wt] : graded_nodes()) {
    auto w = Qbar(p, t)[x0];
    auto pred = p.read_output(den(t).unsqueeze(1), xt, tfull(V, t));
    auto f = generic ? p.elbo_integrand_generic(x0b, xt, tfull(V, t), pred) : p.elbo_integrand(x0b, xt, tfull(V, t), pred);
    total += wt * torch::where(w > 0, w * f.squeeze(1), torch::zeros_like(w)).sum().item<double>();
  }
  return total;
}

// The exact denoiser under the Bayes parameterisation (read_output multiplies by q(x_t | x0)): the data law.
Denoiser1D exact(const CategoricalProcess& p, const Tensor& px0) {
  return [&p, px0](double) { return torch::log(px0).expand({p.num_states(), p.num_categories()}); };
}

std::vector<J> processes(int64_t T) {
  return {J{{"name", "uniform"}, {"K", 3}, {"steps", T}},
          J{{"name", "absorbing"}, {"K", 3}, {"steps", T}},
          J{{"name", "absorbing"}, {"K", 3}, {"steps", T}, {"schedule", "cosine"}},
          J{{"name", "blackout"}, {"K", 4}, {"steps", T}},
          J{{"name", "rate-matrix"}, {"steps", T}, {"rates", {{-2.0, 1.5, 0.5}, {0.3, -1.0, 0.7}, {1.0, 1.0, -2.0}}}}};
}

Tensor data_law(int64_t K) { return torch::arange(1, K + 1, torch::kFloat64) / double(K * (K + 1) / 2); }

}  // namespace

TEST(DiscreteElbo, ExactDenoiserGivesMinusLogLikelihoodInDiscreteTime) {
  for (int64_t T : {1, 2, 5, 20}) {
    auto cfgs = processes(T);
    cfgs.push_back(J{{"name", "discretized-gaussian"}, {"K", 4}, {"steps", T}, {"beta_min", 0.5}, {"beta_max", 5.0}});
    for (auto& cfg : cfgs) {
      auto p = make_cat(cfg);
      auto px0 = data_law(p->num_categories());
      for (int64_t x0 = 0; x0 < p->num_categories(); ++x0) {
        double want = -std::log(px0[x0].item<double>()) + prior_mismatch(*p, px0, x0);
        EXPECT_NEAR(nelbo_discrete(*p, exact(*p, px0), x0), want, 1e-4) << cfg.dump() << " x0=" << x0;
      }
    }
  }
}

TEST(DiscreteElbo, ExactDenoiserGivesMinusLogLikelihoodInContinuousTime) {
  for (auto& cfg : processes(0)) {
    auto p = make_cat(cfg);
    auto px0 = data_law(p->num_categories());
    for (int64_t x0 = 0; x0 < p->num_categories(); ++x0) {
      double want = -std::log(px0[x0].item<double>()) + prior_mismatch(*p, px0, x0);
      EXPECT_NEAR(nelbo_continuous(*p, exact(*p, px0), x0), want, 1e-4) << cfg.dump() << " x0=" << x0;
    }
  }
}

TEST(DiscreteElbo, TwoCorrelatedDimensionsInContinuousTime) {
  // p(x0) on K x K with correlation; the denoiser gives each dimension's exact conditional given all of x_t.
  for (auto& cfg : processes(0)) {
    auto p = make_cat(cfg);
    const int64_t K = p->num_categories(), V = p->num_states();
    auto joint = torch::ones({K, K}, torch::kFloat64) + 4.0 * torch::eye(K, torch::kFloat64);
    joint[0][1] = 2.5;
    joint = joint / joint.sum();
    auto grid = torch::arange(V * V);
    auto xt = torch::stack({grid.div(V, "floor"), grid.remainder(V)}, 1);  // [V^2, 2] every pair
    for (auto [a0, b0] : {std::pair<int64_t, int64_t>{0, 1}, {1, 1}, {K - 1, 0}}) {
      auto x0b = torch::tensor({a0, b0}).expand({V * V, 2});
      double total = p->prior_kl(torch::tensor({{a0, b0}})).sum().item<double>();
      for (auto [t, wt] : graded_nodes(16)) {
        auto Q = Qbar(*p, t).narrow(0, 0, K);                             // [K, V]
        // p(x0a, x0b | x_t) ∝ p(x0a, x0b) Q[x0a, xta] Q[x0b, xtb]  -> [V^2, K, K]
        auto post = joint.unsqueeze(0) * Q.t().index({xt.select(1, 0)}).unsqueeze(2) * Q.t().index({xt.select(1, 1)}).unsqueeze(1);
        auto norm = post.sum({1, 2}, true);
        post = post / torch::where(norm > 0, norm, torch::ones_like(norm));
        auto cond = torch::stack({post.sum(2), post.sum(1)}, 1);  // [V^2, 2, K] per-dimension conditionals
        // Raw output for the Bayes parameterisation: the conditional divided by q(x_t^d | x0^d = k).
        auto lik = torch::stack({Q.t().index({xt.select(1, 0)}), Q.t().index({xt.select(1, 1)})}, 1);  // [V^2, 2, K]
        auto raw = torch::log(cond) - torch::log(torch::where(lik > 0, lik, torch::ones_like(lik)));
        auto pred = p->read_output(raw, xt, tfull(V * V, t));
        EXPECT_TRUE(torch::allclose(pred.exp(), cond, 1e-9, 1e-12)) << cfg.dump();
        auto f = p->elbo_integrand(x0b, xt, tfull(V * V, t), pred).sum(1);  // [V^2]
        auto Qf = Qbar(*p, t);
        auto w = Qf[a0].index({xt.select(1, 0)}) * Qf[b0].index({xt.select(1, 1)});
        total += wt * torch::where(w > 0, w * f, torch::zeros_like(w)).sum().item<double>();
      }
      // prior mismatch over the joint x_1
      auto Q1 = Qbar(*p, 1.0);
      auto q1 = Q1.narrow(0, 0, K).t().mm(joint).mm(Q1.narrow(0, 0, K));  // q(x_1) [V, V]
      auto prior = p->prior_probs();
      auto row = Q1[a0].unsqueeze(1) * Q1[b0].unsqueeze(0);
      auto pp = prior.unsqueeze(1) * prior.unsqueeze(0);
      double mism = torch::where(row > 0, row * (torch::log(q1) - torch::log(pp)), torch::zeros_like(row)).sum().item<double>();
      double want = -std::log(joint[a0][b0].item<double>()) + mism;
      EXPECT_NEAR(total, want, 1e-4) << cfg.dump() << " x0=(" << a0 << "," << b0 << ")";
    }
  }
}

TEST(DiscreteElbo, ClosedFormsEqualTheGenericPath) {
  auto gen = seeded(11);
  for (auto cfg : {J{{"name", "uniform"}, {"K", 5}}, J{{"name", "absorbing"}, {"K", 5}},
                   J{{"name", "absorbing"}, {"K", 5}, {"schedule", "cosine"}}, J{{"name", "uniform"}, {"K", 5}, {"schedule", "log-linear"}}}) {
    auto p = make_cat(cfg);
    const int64_t V = p->num_states();
    auto x0 = at::randint(0, 5, {16, 7}, gen);
    auto t = at::rand({16}, gen, torch::kFloat64) * 0.98 + 0.01;
    auto xt = p->sample_xt(x0, t, gen);
    EXPECT_GT(xt.max().item<int64_t>(), -1);
    auto pred = p->read_output(at::randn({16, 7, 5}, gen, torch::kFloat64), xt, t);
    auto closed = p->elbo_integrand(x0, xt, t, pred);
    auto generic = p->elbo_integrand_generic(x0, xt, t, pred);
    auto dense = p->elbo_integrand_dense(x0, xt, t, pred);
    EXPECT_TRUE(torch::allclose(closed, generic, 1e-9, 1e-10)) << cfg.dump();
    EXPECT_TRUE(torch::allclose(closed, dense, 1e-9, 1e-10)) << cfg.dump();
    EXPECT_GT(closed.abs().sum().item<double>(), 0.0) << cfg.dump();
    EXPECT_GE(closed.min().item<double>(), -1e-12) << cfg.dump();  // a generalised KL is >= 0
    (void)V;
  }
}

TEST(DiscreteElbo, DiscreteTimeApproachesContinuousTime) {
  for (auto cfg : {J{{"name", "uniform"}, {"K", 3}}, J{{"name", "absorbing"}, {"K", 3}}, J{{"name", "blackout"}, {"K", 4}}}) {
    auto pc = make_cat(cfg);
    auto px0 = data_law(pc->num_categories());
    // A model that is no exact denoiser of any law: a t-dependent blend of the exact denoisers of the
    // data law and of the uniform law (it keeps the exact support, so the continuous bound stays finite).
    auto imperfect = [](const CategoricalProcess& p, const Tensor& px0) -> Denoiser1D {
      return [&p, px0](double t) {
        auto K = p.num_categories();
        auto flat = torch::full({K}, 1.0 / double(K), torch::kFloat64);
        return torch::log((1.0 - 0.6 * t) * exact_denoiser(p, px0, t) + 0.6 * t * exact_denoiser(p, flat, t));
      };
    };
    double cont = nelbo_continuous(*pc, imperfect(*pc, px0), 0);  // x0 = 0: p(x0) != 1/K, so the blend varies in t
    double prev = 1e300;
    for (int64_t T : {10, 100, 1000}) {
      cfg["steps"] = T;
      auto pd = make_cat(cfg);
      double gap = std::abs(nelbo_discrete(*pd, imperfect(*pd, px0), 0) - cont);
      EXPECT_LT(gap, prev) << cfg.dump();
      prev = gap;
    }
    EXPECT_LT(prev, 0.01 * cont) << cfg.dump();
  }
}
