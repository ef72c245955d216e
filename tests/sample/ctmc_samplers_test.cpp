// Discrete samplers recover a factorised categorical law under its exact denoiser; SEDD = exact step; MDLM cache.
#include <gtest/gtest.h>

#include "core/mixture_kernels.h"
#include "sample/ancestral.h"
#include "sample/sampler.h"
#include "sample_test_util.h"
#include "test_util.h"

namespace gsdiff {
namespace {

using testing::empirical;
using testing::exact_categorical_denoiser;
using testing::tv_tol;

// K = 4 over each registered categorical kernel (rate-matrix: a birth-death generator on 4 states that is
// not symmetric, so its stationary law, the prior, is not uniform; discretized-gaussian is discrete time only).
nlohmann::json cat_config(const std::string& name, int64_t steps) {
  nlohmann::json j = {{"name", name}, {"K", 4}, {"steps", steps}, {"dtype", "float64"}};
  if (name == "rate-matrix")
    j["rates"] = {{-1.0, 1.0, 0.0, 0.0}, {0.5, -1.0, 0.5, 0.0}, {0.0, 0.5, -1.0, 0.5}, {0.0, 0.0, 1.0, -1.0}};
  if (name == "rate-matrix") j.erase("K");
  return j;
}

std::unique_ptr<CategoricalProcess> make_cat(const std::string& name, int64_t steps = 0) {
  register_builtins();
  auto p = make_process(cat_config(name, steps));
  return std::unique_ptr<CategoricalProcess>(dynamic_cast<CategoricalProcess*>(p.release()));
}

// Three positions with different laws over K = 4.
torch::Tensor data_law() {
  return torch::tensor({{0.1, 0.2, 0.3, 0.4}, {0.7, 0.1, 0.1, 0.1}, {0.25, 0.05, 0.45, 0.25}}, torch::kFloat64);
}

struct CtmcCase {
  std::string process, sampler;
  int64_t steps;
  double slack;  // discretisation slack on TV: tau-leaping / Euler are first order in the step (measured
                 // TV error at these steps < slack / 3); the exact-step samplers have none
  int64_t T = 0;         // the process's steps (0 = continuous time)
  bool ordinal = false;  // tau-leaping's ordinal step
};

class CategoricalRecovery : public ::testing::TestWithParam<CtmcCase> {};

TEST_P(CategoricalRecovery, TotalVariationWithinSamplingError) {
  const auto c = GetParam();
  auto p = make_cat(c.process, c.T);
  auto px0 = data_law();
  const int64_t N = 8000;
  auto gen = testing::seeded(11);
  SamplerOptions so;
  so.denoiser_uses_t = false;  // the exact absorbing/uniform p(x0 | x_t) normalises away t's factors
  if (c.ordinal) so.method = to_json(TauLeapingOptions().ordinal(true));
  auto x = make_sampler(c.sampler, so)(*p, exact_categorical_denoiser(*p, px0), time_grid(*p, c.steps), {N, 3}, gen, {});
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{N, 3}));
  EXPECT_TRUE(((x >= 0) & (x < 4)).all().item<bool>()) << "mask or out-of-range states left";
  auto emp = empirical(x, 4);
  for (int64_t l = 0; l < 3; ++l) {
    const double tv = 0.5 * (emp[l] - px0[l]).abs().sum().item<double>();
    EXPECT_LT(tv, tv_tol(px0[l], N) + c.slack) << c.process << "/" << c.sampler << " position " << l;
  }
}

// Every registered categorical process x every sampler that applies to it (the others are refused, below), in
// continuous time and, for the exact-step samplers, in discrete time on a subsampled grid of T = 1000.
INSTANTIATE_TEST_SUITE_P(
    Samplers, CategoricalRecovery,
    ::testing::Values(CtmcCase{"absorbing", "ancestral", 50, 0.0}, CtmcCase{"absorbing", "tau-leaping", 100, 0.02},
                      CtmcCase{"absorbing", "euler", 100, 0.02}, CtmcCase{"absorbing", "tweedie", 50, 0.0},
                      CtmcCase{"absorbing", "mdlm-cached", 50, 0.0}, CtmcCase{"uniform", "ancestral", 50, 0.0},
                      CtmcCase{"uniform", "tau-leaping", 200, 0.03}, CtmcCase{"uniform", "euler", 200, 0.03},
                      CtmcCase{"uniform", "tweedie", 50, 0.0},
                      CtmcCase{"blackout", "ancestral", 50, 0.0}, CtmcCase{"blackout", "tau-leaping", 200, 0.03},
                      CtmcCase{"blackout", "tau-leaping", 200, 0.03, 0, true}, CtmcCase{"blackout", "euler", 200, 0.03},
                      CtmcCase{"blackout", "tweedie", 50, 0.0},
                      CtmcCase{"rate-matrix", "ancestral", 50, 0.0}, CtmcCase{"rate-matrix", "tau-leaping", 200, 0.03},
                      CtmcCase{"rate-matrix", "euler", 200, 0.03}, CtmcCase{"rate-matrix", "tweedie", 50, 0.0},
                      CtmcCase{"discretized-gaussian", "ancestral", 50, 0.0, 1000},
                      CtmcCase{"discretized-gaussian", "tweedie", 50, 0.0, 1000},
                      CtmcCase{"absorbing", "ancestral", 50, 0.0, 1000}, CtmcCase{"uniform", "tweedie", 50, 0.0, 1000},
                      CtmcCase{"blackout", "ancestral", 50, 0.0, 1000}, CtmcCase{"rate-matrix", "tweedie", 50, 0.0, 1000}),
    [](const auto& info) {
      std::string n = info.param.process + "_" + info.param.sampler + (info.param.ordinal ? "_ordinal" : "") +
                      (info.param.T > 0 ? "_T" + std::to_string(info.param.T) : "");
      for (auto& ch : n)
        if (!isalnum(ch)) ch = '_';
      return n;
    });

// A pair that cannot work is refused before it runs, with the compatible samplers named.
TEST(SamplerRegistry, IncompatiblePairsNameTheSamplersThatApply) {
  struct Refused {
    std::string process, sampler;
    bool ordinal;
    std::string why, compatible;
  };
  const std::vector<Refused> cases = {
      {"discretized-gaussian", "tau-leaping", false, "no generator R_t", "ancestral, tweedie"},
      {"discretized-gaussian", "euler", false, "no generator R_t", "ancestral, tweedie"},
      {"uniform", "mdlm-cached", false, "exact only for the absorbing process", "ancestral, euler, tau-leaping, tweedie"},
      {"uniform", "tau-leaping", true, "its states are not ordered", "ancestral, euler, tweedie"},
      {"absorbing", "ddim", false, "needs a Gaussian process", "ancestral, euler, mdlm-cached, tau-leaping, tweedie"},
  };
  for (const auto& c : cases) {
    auto p = make_cat(c.process, c.process == "discretized-gaussian" ? 1000 : 0);
    SamplerOptions so;
    if (c.ordinal) so.method = to_json(TauLeapingOptions().ordinal(true));
    so.denoiser_uses_t = false;
    auto gen = testing::seeded(0);
    try {
      make_sampler(c.sampler, so)(*p, exact_categorical_denoiser(*p, data_law()), time_grid(*p, 4), {2, 3}, gen, {});
      ADD_FAILURE() << c.process << "/" << c.sampler << " ran";
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("sampler '" + c.sampler + "' does not apply to the " + c.process + " process"), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.why), std::string::npos) << msg;
      EXPECT_NE(msg.find("samplers for it: " + c.compatible), std::string::npos) << msg;
    }
  }
  for (const std::string name : {"absorbing", "uniform", "blackout", "rate-matrix"})
    for (const auto& s : compatible_samplers(*make_cat(name)))
      EXPECT_NE(s, "ddim") << name;
}

// SEDD's analytic step written with the inverse kernel, r_s = r_t Q_{t|s}^{-1} (Lou et al. 2024, Thm 4.2),
// for Q_{t|s} = a I + (1 - a) 1 pi^T: Q^{-1} = I / a - (1 - a) / a 1 pi^T. It equals both
// tweedie_reverse_probs and the process's exact reverse_probs.
TEST(Tweedie, AnalyticStepIsTheExactReverseStep) {
  for (const std::string name : {"absorbing", "uniform"}) {
    auto p = make_cat(name);
    auto* mk = dynamic_cast<MixtureKernelProcess*>(p.get());
    ASSERT_NE(mk, nullptr);
    auto gen = testing::seeded(5);
    const int64_t B = 64, V = p->num_states();
    auto xt = at::randint(0, V, {B, 3}, gen, torch::TensorOptions().dtype(torch::kLong));
    auto logits = at::randn({B, 3, 4}, gen, torch::TensorOptions().dtype(torch::kFloat64));
    for (auto [sv, tv] : {std::pair{0.3, 0.6}, std::pair{0.05, 0.9}, std::pair{0.7, 0.72}}) {
      auto s = torch::full({B}, sv, torch::kFloat64), t = torch::full({B}, tv, torch::kFloat64);
      auto lp = p->read_output(logits, xt, t);
      auto exact = p->reverse_probs(xt, s, t, lp).to(torch::kFloat64);
      auto tw = tweedie_reverse_probs(*p, xt, s, t, lp);
      // Independent inverse-kernel form.
      auto lik = p->likelihood_of_xt(xt, t).to(torch::kFloat64);
      auto w = torch::where(lik > 0, torch::exp(lp) / lik.clamp_min(1e-300), torch::zeros_like(lik));
      auto rt = p->mul_qbar(w, t).to(torch::kFloat64);  // r_t(z) = p_t(z) / p_t(x_t)   [B, 3, V]
      const double a = (mk->schedule().alpha(torch::tensor({tv}, torch::kFloat64)) /
                        mk->schedule().alpha(torch::tensor({sv}, torch::kFloat64))).item<double>();
      auto pi = p->prior_probs().to(torch::kFloat64);
      auto rs = rt / a - (1 - a) / a * pi * rt.sum(-1, true);
      auto into = a * torch::one_hot(xt, V).to(torch::kFloat64) + (1 - a) * pi.index_select(0, xt.reshape(-1)).reshape({B, 3, 1});
      auto sedd = (into * rs).clamp_min(0.0);
      sedd = sedd / sedd.sum(-1, true);
      EXPECT_TRUE(torch::allclose(tw, exact, 1e-9, 1e-12)) << name << " t=" << tv;
      EXPECT_TRUE(torch::allclose(sedd, exact, 1e-9, 1e-12)) << name << " t=" << tv;
    }
  }
}

TEST(MdlmCached, SameSamplesAsAncestralWithFewerNetworkCalls) {
  auto p = make_cat("absorbing");
  auto f = exact_categorical_denoiser(*p, data_law());
  auto grid = time_grid(*p, 200);
  for (int64_t B : {4, 2000}) {
    SamplerStats plain, cached;
    SamplerOptions op, oc;
    op.stats = &plain;
    oc.stats = &cached;
    oc.denoiser_uses_t = false;  // absorbing: the exact p(x0 | x_t) does not depend on t
    auto g1 = testing::seeded(9), g2 = testing::seeded(9);
    auto a = make_sampler("ancestral", op)(*p, f, grid, {B, 3}, g1, {});
    auto b = make_sampler("mdlm-cached", oc)(*p, f, grid, {B, 3}, g2, {});
    EXPECT_TRUE(torch::equal(a, b)) << "B=" << B;  // same draws: p(x0 | x_t) does not depend on t for absorbing
    EXPECT_EQ(plain.network_calls, 200);
    EXPECT_EQ(plain.network_rows, 200 * B);
    // Each row is re-evaluated only after one of its 3 tokens was unmasked: at most 1 + 3 evaluations per row.
    EXPECT_LE(cached.network_rows, 4 * B) << "B=" << B;
    if (B == 4) {  // a small batch also saves whole calls (a large one changes some row nearly every step)
      EXPECT_LE(cached.network_calls, 1 + 3 * B);
      EXPECT_LT(cached.network_calls, plain.network_calls);
    }
  }
  auto u = make_cat("uniform");
  auto gen = testing::seeded(0);
  SamplerOptions o;
  o.denoiser_uses_t = false;
  EXPECT_THROW(make_sampler("mdlm-cached", o)(*u, f, grid, {2, 3}, gen, {}), std::invalid_argument);
}

// A denoiser that depends on t (here the exact denoiser of one law above t = 0.5 and of another below it, as an
// expert switch or a time-conditioned network would): mdlm-cached refuses it by default, and forced to cache it
// anyway its samples leave ancestral's, which is how a stale cache shows.
TEST(MdlmCached, RefusesATimeDependentDenoiserAndItsCacheWouldBeStale) {
  auto p = make_cat("absorbing");
  auto hi = exact_categorical_denoiser(*p, data_law());
  auto lo = exact_categorical_denoiser(*p, data_law().flip(1));
  DenoiseFn f = [&](const torch::Tensor& x, const torch::Tensor& t) {
    auto above = (t > 0.5).view({-1, 1, 1});  // [B, 1, 1]
    return torch::where(above, hi(x, t), lo(x, t));
  };
  auto grid = time_grid(*p, 100);
  const int64_t B = 8000;
  auto g0 = testing::seeded(3);
  try {
    make_sampler("mdlm-cached")(*p, f, grid, {B, 3}, g0, {});
    FAIL() << "mdlm-cached accepted a time-conditioned denoiser";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("time-conditioned"), std::string::npos) << e.what();
  }
  SamplerOptions forced;
  forced.denoiser_uses_t = false;  // a false claim: the test must tell the stale cache from the correct chain
  auto g1 = testing::seeded(3), g2 = testing::seeded(3);
  auto a = make_sampler("ancestral")(*p, f, grid, {B, 3}, g1, {});
  auto b = make_sampler("mdlm-cached", forced)(*p, f, grid, {B, 3}, g2, {});
  EXPECT_FALSE(torch::equal(a, b));
  // Each token unmasks at a uniform time (alpha_t = 1 - t) and is drawn from the prediction of its step: hi's
  // law above 0.5, lo's below. Position 1, k = 3: hi 0.1, lo 0.7, so the correct chain gives 0.5 0.1 + 0.5 0.7
  // = 0.4. The stale cache draws every row's first unmasking below 0.5 from a prediction made above it (hi):
  // fewer 3s. Tolerance: 5 binomial standard deviations of one frequency over B rows.
  const double tol = 5 * std::sqrt(0.4 * 0.6 / double(B));
  auto pa = empirical(a, 4), pb = empirical(b, 4);
  EXPECT_NEAR(pa[1][3].item<double>(), 0.4, tol);
  EXPECT_LT(pb[1][3].item<double>(), 0.4 - tol);
}

TEST(DiscreteSamplers, DeterministicForAFixedGenerator) {
  for (const std::string proc : {"absorbing", "uniform"}) {
    auto p = make_cat(proc, 20);  // discrete time: the grid is the process's
    auto f = exact_categorical_denoiser(*p, data_law());
    auto grid = time_grid(*p);
    ASSERT_EQ(grid.size(), 21u);
    for (const auto& name : sampler_names(Space::Discrete)) {
      if (name == "mdlm-cached" && proc != "absorbing") continue;
      auto g1 = testing::seeded(2), g2 = testing::seeded(2), g3 = testing::seeded(3);
      SamplerOptions so;
      so.denoiser_uses_t = false;  // the exact denoiser's normalised p(x0 | x_t) does not depend on t
      auto a = make_sampler(name, so)(*p, f, grid, {64, 3}, g1, {});
      auto b = make_sampler(name, so)(*p, f, grid, {64, 3}, g2, {});
      auto c = make_sampler(name, so)(*p, f, grid, {64, 3}, g3, {});
      EXPECT_TRUE(torch::equal(a, b)) << proc << "/" << name;
      EXPECT_FALSE(torch::equal(a, c)) << proc << "/" << name;
    }
  }
}

}  // namespace
}  // namespace gsdiff
