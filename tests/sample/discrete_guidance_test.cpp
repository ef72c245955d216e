// D-CFG (Schiff et al. 2025) on a one-position toy with a known class-conditional law, against dense enumeration.
#include <gtest/gtest.h>

#include <torch/special.h>

#include "core/categorical.h"
#include "core/elbo.h"
#include "core/registry.h"
#include "sample/guidance.h"
#include "sample/masked_step.h"
#include "sample/sampler.h"
#include "sample/step_guidance.h"
#include "test_util.h"

namespace gsdiff {
namespace discrete_guidance {

using torch::Tensor;
constexpr int64_t K = 3;

// p(x0 | y) for y = 0, 1 and p(y) = (1/2, 1/2): p(x0) = (0.35, 0.3, 0.35).
Tensor class_law(int64_t y) {
  return y == 0 ? torch::tensor({0.6, 0.3, 0.1}, torch::kFloat64) : torch::tensor({0.1, 0.3, 0.6}, torch::kFloat64);
}
Tensor marginal_law() { return 0.5 * (class_law(0) + class_law(1)); }

std::unique_ptr<Process> make(const std::string& name) {
  register_builtins();
  return make_process({{"name", name}, {"K", K}, {"steps", 0}, {"dtype", "float64"}, {"parameterization", "bayes"}});
}

// The exact denoiser of x0 ~ law at one position: under the Bayes reading the network's logits are log law.
DenoiseFn law_denoiser(Tensor law) {
  return [law](const Tensor& xt, const Tensor&) { return torch::log(law).view({1, 1, K}).expand({xt.size(0), 1, K}).contiguous(); };
}

// ---- the independent computation: dense kernels from the schedules' closed forms (README, Processes) ----
struct Dense {
  bool absorbing;
  int64_t V() const { return absorbing ? K + 1 : K; }
  double alpha(double t) const { return absorbing ? 1.0 - t : 1.0 - std::cos(M_PI / 2 * (1.0 - t)); }
  // alpha I + (1 - alpha) 1 pi^T over the V states (pi = the mask, or uniform over K).
  Tensor mix(double a) const {
    auto pi = absorbing ? torch::one_hot(torch::tensor(K), V()).to(torch::kFloat64) : torch::full({V()}, 1.0 / K, torch::kFloat64);
    return a * torch::eye(V(), torch::kFloat64) + (1 - a) * torch::ones({V(), 1}, torch::kFloat64) * pi.view({1, -1});
  }
  Tensor prior() const { return mix(0.0)[0]; }
  // p(x_s | x_t) [V(x_t), V(x_s)] for data law `law` (over K): sum_x0 p(x0 | x_t) q(x_s | x_t, x0), with
  // p(x0 | x_t) ∝ law(x0) Qbar_t[x0, x_t] and q(x_s | x_t, x0) ∝ Q_{t|s}[x_s, x_t] Qbar_s[x0, x_s].
  Tensor step(const Tensor& law, double s, double t) const {
    auto qbt = mix(alpha(t)).narrow(0, 0, K), qbs = mix(alpha(s)).narrow(0, 0, K);  // [K, V]
    auto qts = mix(alpha(t) / alpha(s));                                            // [V, V]
    auto post = law.view({K, 1}) * qbt;                                             // [x0, x_t]
    post = post / post.sum(0, true).clamp_min(1e-300);
    auto q = qts.t().unsqueeze(1) * qbs.unsqueeze(0);    // [x_t, x0, x_s] = Q_{t|s}[x_s, x_t] Qbar_s[x0, x_s]
    q = q / q.sum(-1, true).clamp_min(1e-300);
    return torch::einsum("ax,axs->as", {post.t(), q});  // [x_t, x_s]
  }
  // The law of x_0 after the chain on `grid` with each step p_c^gamma p_u^(1 - gamma), normalised per x_t.
  Tensor chain(const std::vector<double>& grid, double gamma, const Tensor& lc, const Tensor& lu) const {
    auto law = chain_states(grid, gamma, lc, lu);
    return law.narrow(0, 0, K) / law.sum();
  }
  // The same over all V states at the grid's last time [V].
  Tensor chain_states(const std::vector<double>& grid, double gamma, const Tensor& lc, const Tensor& lu) const {
    auto law = prior();
    for (size_t k = 0; k + 1 < grid.size(); ++k) {
      auto pc = step(lc, grid[k + 1], grid[k]), pu = step(lu, grid[k + 1], grid[k]);
      auto g = torch::where((pc > 0).logical_and(pu > 0), torch::pow(pc, gamma) * torch::pow(pu, 1 - gamma), torch::zeros_like(pc));
      g = g / g.sum(-1, true).clamp_min(1e-300);
      law = law.matmul(g);  // [V]
    }
    return law;
  }
  // log p(y | x_s) [V, 2] at time s: p(x_s | y) = sum_x0 p(x0 | y) Qbar_s[x0, x_s], p(y) = 1/2.
  Tensor class_log_post(double s) const {
    auto qbs = mix(alpha(s)).narrow(0, 0, K);                                      // [K, V]
    auto lik = torch::stack({class_law(0).matmul(qbs), class_law(1).matmul(qbs)}, 1);  // [V, 2]
    auto z = lik.sum(1, true);  // 0 for states q(x_s) cannot reach (absorbing at s = 1): taken as 1/2 each
    return torch::where(z > 0, torch::log(lik / z.clamp_min(1e-300)), torch::full_like(lik, std::log(0.5)));
  }
  // The law of x_0 after the chain with each step p_u(x_s | x_t) p(y | x_s)^gamma, normalised per x_t (D-CBG).
  Tensor cbg_chain(const std::vector<double>& grid, double gamma, int64_t y) const {
    auto law = prior();
    for (size_t k = 0; k + 1 < grid.size(); ++k) {
      auto g = step(marginal_law(), grid[k + 1], grid[k]) * torch::exp(gamma * class_log_post(grid[k + 1]).select(1, y)).view({1, -1});
      law = law.matmul(g / g.sum(-1, true).clamp_min(1e-300));  // [V]
    }
    return law.narrow(0, 0, K) / law.sum();
  }
};

// Chi-square p-value of draws x [N, 1] against law [K] (df = K - 1); a correct sampler falls below 1e-4 once in 10^4.
double chi2_pvalue(const Tensor& x, const Tensor& law) {
  const int64_t n = x.size(0);
  auto counts = torch::bincount(x.reshape({-1}), {}, K).to(torch::kFloat64);
  auto expect = law * double(n);
  const double chi2 = ((counts - expect).square() / expect).sum().item<double>();
  return torch::special::gammaincc(torch::tensor((K - 1) / 2.0), torch::tensor(chi2 / 2)).item<double>();
}

// Draws N samples of class 0 with D-CFG at gamma through a sampler (ancestral: what `gsdiff sample` runs by default).
// The toy's denoisers ignore t, as mdlm-cached requires.
Tensor guided_draws(const Process& p, const std::vector<double>& grid, double gamma, int64_t N, uint64_t seed,
                    const std::string& sampler = "ancestral") {
  SamplerOptions so;
  so.guidance = discrete_cfg(law_denoiser(marginal_law()), gamma);
  so.denoiser_uses_t = false;
  auto gen = testing::seeded(seed);
  return make_sampler(sampler, so)(p, law_denoiser(class_law(0)), grid, {N, 1}, gen, {}, {});
}

constexpr int64_t kDraws = 40000;

TEST(DiscreteCfg, GammaOneIsTheConditionalLawAndZeroTheUnconditional) {
  for (const std::string name : {"absorbing", "uniform"}) {
    auto p = make(name);
    auto grid = time_grid(*p, 8);
    EXPECT_GT(chi2_pvalue(guided_draws(*p, grid, 1.0, kDraws, 1), class_law(0)), 1e-4) << name;
    EXPECT_GT(chi2_pvalue(guided_draws(*p, grid, 0.0, kDraws, 2), marginal_law()), 1e-4) << name;
  }
}

// gamma = 2.5 on one- and two-step chains: the draws follow the law the formula gives, enumerated densely here,
// which is far (total variation > 0.05, against a chi-square that detects ~0.01 at N = 40000) from the conditional
// law. (At one position the absorbing chain ends in normalise(p_c^gamma p_u^(1-gamma)) whatever the grid: a token,
// once unmasked, stays, and every unmasking step draws it from that law.)
TEST(DiscreteCfg, LargerGammaFollowsTheGuidedTransitionsFormula) {
  const double gamma = 2.5;
  for (const bool absorbing : {true, false}) {
    auto p = make(absorbing ? "absorbing" : "uniform");
    Dense d{absorbing};
    std::vector<Tensor> laws;
    for (const auto& grid : {std::vector<double>{1.0, 0.0}, std::vector<double>{1.0, 0.5, 0.0}}) {
      auto law = d.chain(grid, gamma, class_law(0), marginal_law());
      laws.push_back(law);
      EXPECT_GT(0.5 * (law - class_law(0)).abs().sum().item<double>(), 0.05);
      EXPECT_GT(law[0].item<double>(), class_law(0)[0].item<double>());  // sharper towards the class's own mode
      // tweedie's step is the exact reverse step, and mdlm-cached's is formed from the cached prediction (absorbing).
      std::vector<std::string> samplers{"ancestral", "tweedie"};
      if (absorbing) samplers.push_back("mdlm-cached");
      for (const auto& sampler : samplers)
        EXPECT_GT(chi2_pvalue(guided_draws(*p, grid, gamma, kDraws, 3 + grid.size(), sampler), law), 1e-4)
            << (absorbing ? "absorbing" : "uniform") << " " << sampler << " " << grid.size() - 1 << " steps: " << law;
    }
  }
}

// What makes D-CFG a transition-level guidance: the absorbing chain's probability of staying masked from t to s is
// (1 - alpha_s) / (1 - alpha_t) = 1/2 from t = 1 to s = 1/2 for every x0 prediction, and the guided step moves it to
// b / (a Z + b), Z = sum_k p_c^gamma p_u^(1-gamma) (a = b = 1/2; Z = 1.66 at gamma = 2.5: 0.376). The masked fraction
// after the first step matches the enumeration within 5 binomial standard deviations (0.012 here) and is 20 of
// them away from 1/2.
TEST(DiscreteCfg, GuidedStepsChangeTheUnmaskingRate) {
  auto p = make("absorbing");
  Dense d{true};
  const double gamma = 2.5;
  const double want = d.chain_states({1.0, 0.5}, gamma, class_law(0), marginal_law())[K].item<double>();
  std::vector<Tensor> states;
  StepHook record = [&states](const Tensor& x, const StepInfo&, torch::Generator&) {
    states.push_back(x.clone());
    return x;
  };
  SamplerOptions so;
  so.guidance = discrete_cfg(law_denoiser(marginal_law()), gamma);
  auto gen = testing::seeded(9);
  make_sampler("ancestral", so)(*p, law_denoiser(class_law(0)), {1.0, 0.5, 0.0}, {kDraws, 1}, gen, {}, record);
  ASSERT_EQ(states.size(), 3u);  // the prior draw, x_{1/2}, x_0
  const double masked = (states[1] == K).to(torch::kFloat64).mean().item<double>();
  const double sd = std::sqrt(want * (1 - want) / kDraws);
  EXPECT_NEAR(masked, want, 5 * sd);
  EXPECT_GT(std::abs(want - 0.5), 20 * sd);
}

TEST(DiscreteCfg, EveryDiscreteSamplerOnACategoricalProcessTakesIt) {
  auto p = make("absorbing");
  SamplerOptions so;
  so.guidance = discrete_cfg(law_denoiser(marginal_law()), 2.0);
  so.denoiser_uses_t = false;
  for (const char* name : {"ancestral", "tau-leaping", "euler", "tweedie", "mdlm-cached"})
    EXPECT_NO_THROW(check_sampler(name, *p, so)) << name;
  register_builtins();
  auto g = make_process({{"name", "gaussian-vp"}, {"steps", 0}});
  EXPECT_THROW(check_sampler("ancestral", *g, so), std::invalid_argument);
  // Remasking (ReMDM) changes the step guidance would act on: both transition samplers refuse the pair.
  so.method = to_json(MaskedOptions().remask("cap").eta(0.5));
  for (const char* name : {"ancestral", "mdlm-cached"}) {
    auto gen = testing::seeded(1);
    EXPECT_THROW(make_sampler(name, so)(*p, law_denoiser(class_law(0)), {1.0, 0.5, 0.0}, {4, 1}, gen, {}, {}),
                 std::invalid_argument) << name;
  }
}

// ---- D-CBG ----

// The exact noisy-input classifier of the toy: logits log p(y | x_s) [N, 2] at the time it is given.
DenoiseFn exact_classifier(const Dense& d) {
  return [d](const Tensor& x, const Tensor& s) {
    auto table = d.class_log_post(s[0].item<double>());  // one time per call (the sampler's batch shares s)
    return table.index_select(0, x.reshape({-1}));       // [N, 2]
  };
}

// Draws N samples guided towards class 0 by D-CBG at gamma from the unconditional model (what --classifier runs).
Tensor cbg_draws(const Process& p, const Dense& d, const std::vector<double>& grid, double gamma, uint64_t seed) {
  SamplerOptions so;
  so.guidance = discrete_cbg(exact_classifier(d), torch::zeros({kDraws}, torch::kLong), gamma);
  auto gen = testing::seeded(seed);
  return make_sampler("ancestral", so)(p, law_denoiser(marginal_law()), grid, {kDraws, 1}, gen, {}, {});
}

// With the exact classifier, gamma = 1 turns the unconditional model into the class's law (exact at one position:
// p(x_s | x_t, y) ∝ p(x_s | x_t) p(y | x_s), the forward chain being Markov), and gamma = 0 leaves it unconditional.
TEST(DiscreteCbg, GammaOneWithTheExactClassifierIsTheConditionalLaw) {
  for (const bool absorbing : {true, false}) {
    auto p = make(absorbing ? "absorbing" : "uniform");
    Dense d{absorbing};
    auto grid = time_grid(*p, 8);
    EXPECT_GT(chi2_pvalue(cbg_draws(*p, d, grid, 1.0, 11), class_law(0)), 1e-4) << absorbing;
    EXPECT_GT(chi2_pvalue(cbg_draws(*p, d, grid, 0.0, 12), marginal_law()), 1e-4) << absorbing;
  }
}

// gamma = 2.5 on one- and two-step chains: the law the formula gives, enumerated here (total variation > 0.05
// from the conditional law, and sharper towards its mode).
TEST(DiscreteCbg, LargerGammaFollowsTheFormula) {
  for (const bool absorbing : {true, false}) {
    auto p = make(absorbing ? "absorbing" : "uniform");
    Dense d{absorbing};
    for (const auto& grid : {std::vector<double>{1.0, 0.0}, std::vector<double>{1.0, 0.5, 0.0}}) {
      auto law = d.cbg_chain(grid, 2.5, 0);
      EXPECT_GT(0.5 * (law - class_law(0)).abs().sum().item<double>(), 0.05);
      EXPECT_GT(law[0].item<double>(), class_law(0)[0].item<double>());
      EXPECT_GT(chi2_pvalue(cbg_draws(*p, d, grid, 2.5, 20 + grid.size()), law), 1e-4) << absorbing << " " << law;
    }
  }
}

TEST(DiscreteCbg, RefusesMoreRowsThanItsLimit) {
  auto p = make("absorbing");
  Dense d{true};
  auto g = discrete_cbg(exact_classifier(d), torch::zeros({2}, torch::kLong), 1.0,
                        DcbgOptions().approximation("exact").max_rows(7));
  auto xt = torch::full({2, 2}, K, torch::kLong), t = torch::full({2}, 0.5, torch::kFloat64);
  auto probs = torch::full({2, 2, K + 1}, 0.25, torch::kFloat64);
  EXPECT_THROW(g->guide(*p, xt, t * 0.5, t, probs), std::invalid_argument);  // 2 positions x 4 states = 8 > 7
  EXPECT_EQ(dcbg_approximation_for(DcbgOptions().max_rows(7), 2, 4), "taylor");  // what auto picks instead
  EXPECT_EQ(dcbg_approximation_for(DcbgOptions().max_rows(8), 2, 4), "exact");
  EXPECT_THROW(discrete_cbg(exact_classifier(d), torch::zeros({2}, torch::kLong), 1.0, DcbgOptions().approximation("first")),
               std::invalid_argument);
}

// ---- the CTMC counterpart (tau-leaping, euler): guided rates ----

// Every state x_t [V, 1] at t = 0.4, with its reverse rates under the exact denoiser of `law` [V, 1, V].
Tensor all_states(const Process& p) { return torch::arange(p.num_states(), torch::kLong).view({-1, 1}); }
Tensor exact_rates(const Process& p, const Tensor& law, const Tensor& xt, const Tensor& t) {
  auto& c = dynamic_cast<const CategoricalProcess&>(p);
  return c.reverse_rates(xt, t, predict(p, law_denoiser(law), xt, t)).to(torch::kFloat64);
}

// D-CFG's rates are R_c^gamma R_u^(1-gamma) off the diagonal: gamma = 1 the conditional rates, 0 the unconditional
// ones, 2.5 the formula (float64 rounding: 1e-12 relative).
TEST(DiscreteCfg, GuidedRatesAreTheGeometricMixtureOfTheRates) {
  for (const std::string name : {"absorbing", "uniform"}) {
    auto p = make(name);
    auto xt = all_states(*p), t = torch::full({xt.size(0)}, 0.4, torch::kFloat64);
    auto rc = exact_rates(*p, class_law(0), xt, t), ru = exact_rates(*p, marginal_law(), xt, t);
    for (const double gamma : {1.0, 0.0, 2.5}) {
      auto want = torch::where((rc > 0).logical_and(ru > 0), torch::pow(rc, gamma) * torch::pow(ru, 1 - gamma), torch::zeros_like(rc));
      auto got = discrete_cfg(law_denoiser(marginal_law()), gamma)->guide_rates(*p, xt, t, rc);
      EXPECT_LE((got - want).abs().max().item<double>(), 1e-12 * want.abs().max().item<double>()) << name << " " << gamma;
    }
  }
}

// D-CBG's rates at gamma = 1 with the exact classifier are the conditional model's rates (Bayes, an identity the
// library does not use: it only sees the unconditional rates and the classifier), to float64 rounding.
TEST(DiscreteCbg, GuidedRatesAtGammaOneAreTheConditionalRates) {
  for (const bool absorbing : {true, false}) {
    auto p = make(absorbing ? "absorbing" : "uniform");
    Dense d{absorbing};
    auto xt = all_states(*p), t = torch::full({xt.size(0)}, 0.4, torch::kFloat64);
    auto rc = exact_rates(*p, class_law(0), xt, t), ru = exact_rates(*p, marginal_law(), xt, t);
    auto got = discrete_cbg(exact_classifier(d), torch::zeros({xt.size(0)}, torch::kLong), 1.0)->guide_rates(*p, xt, t, ru);
    EXPECT_LE((got - rc).abs().max().item<double>(), 1e-9 * rc.abs().max().item<double>()) << absorbing;
  }
}

// ---- Schiff et al.'s first-order Taylor approximation ----

// The toy's exact classifier as a network on the relaxed (one-hot) input: logits = one_hot @ L_s, L_s = log p(y | x_s)
// [V, 2]; at a one-hot row it is the exact classifier.
DenoiseFn relaxed_classifier(const Dense& d) {
  return [d](const Tensor& x, const Tensor& s) {
    auto table = d.class_log_post(s[0].item<double>()).to(torch::kFloat32);  // [V, 2]
    return x.reshape({-1, table.size(0)}).matmul(table);                      // [N, 1, V] -> [N, 2]
  };
}

// For logits linear in the one-hot input the Taylor score has a closed form: with p_c = p(c | x) = exp L[x, c],
// d/d onehot[v] log softmax(onehot @ L)[y] = L[v, y] - sum_c p_c L[v, c], so the score of the change x -> v is
//   log p(y | v) - log p(y | x) + KL(p(. | x) || p(. | v))
// (the exact log-ratio plus the KL of the two class posteriors, the approximation's second-order error). The guided
// step from every state x_t, at two gammas, equals softmax(log p(x_s | x_t) + gamma score) from that formula, to
// float32 rounding of the classifier's logits and gradient (1e-5 absolute on probabilities), and differs from the
// exact enumeration by more than 1e-3 somewhere (the KL term is not negligible here, so the test tells them apart).
TEST(DiscreteCbgTaylor, LinearLogitsGiveTheClosedFormScores) {
  for (const bool absorbing : {true, false}) {
    auto p = make(absorbing ? "absorbing" : "uniform");
    Dense d{absorbing};
    const int64_t V = d.V();
    const double s = 0.3, t = 0.5;
    auto xt = all_states(*p);                                                      // [V, 1]
    auto ss = torch::full({V}, s, torch::kFloat64), tt = torch::full({V}, t, torch::kFloat64);
    auto probs = reverse_step_probs(*p, law_denoiser(marginal_law()), xt, ss, tt);  // [V, 1, V]
    auto L = d.class_log_post(s);                                                  // [V, 2]
    auto post = torch::exp(L);                                                     // p(c | x) [V, 2]
    auto score = L.select(1, 0).view({1, V}) - L.select(1, 0).view({V, 1})                // [x, v] log-ratio
                 + (post.unsqueeze(1) * (L.unsqueeze(1) - L.unsqueeze(0))).sum(-1);      // + KL(p(.|x) || p(.|v))
    for (const double gamma : {1.0, 3.0}) {
      auto pr = probs.reshape({V, V});
      auto want = torch::softmax(torch::where(pr > 0, torch::log(pr) + gamma * score, torch::full_like(pr, -INFINITY)), -1);
      auto taylor = discrete_cbg(relaxed_classifier(d), torch::zeros({V}, torch::kLong), gamma, DcbgOptions().approximation("taylor"));
      auto got = taylor->guide(*p, xt, ss, tt, probs).reshape({V, V});
      EXPECT_LE((got - want).abs().max().item<double>(), 1e-5) << absorbing << " " << gamma;
      auto exact = discrete_cbg(exact_classifier(d), torch::zeros({V}, torch::kLong), gamma, DcbgOptions().approximation("exact"));
      auto ex = exact->guide(*p, xt, ss, tt, probs).reshape({V, V});
      EXPECT_GT((got - ex).abs().max().item<double>(), 1e-3) << absorbing << " " << gamma;
    }
  }
}

}  // namespace discrete_guidance
}  // namespace gsdiff
