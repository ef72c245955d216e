// Sampling discrete flow matching's CTMC: tau-leaping and Euler on its rates, and the posterior step, recover a known law.
#include <gtest/gtest.h>

#include "core/discrete_flow.h"
#include "sample/sampler.h"
#include "sample_test_util.h"
#include "test_util.h"

namespace gsdiff {
namespace {

struct DfmCase {
  std::string noise, sampler;
  double eta;
  int64_t steps;
  double slack;  // TV slack for the first-order CTMC samplers (measured TV error at these steps below slack / 3); none
                 // for the exact posterior step
};

class DiscreteFlowRecovery : public ::testing::TestWithParam<DfmCase> {};

// Three positions with different laws over K = 4, the exact denoiser (Bayes: the network returns log px0), 8000
// samples: per-position TV within 5 binomial standard deviations (tv_tol) plus the case's discretisation slack.
// With eta > 0 the chain also re-noises decoded tokens (uniform: jumps away from x0 at rate eta per state) and must
// still end in the data law.
TEST_P(DiscreteFlowRecovery, TotalVariationWithinSamplingError) {
  const auto c = GetParam();
  register_builtins();
  auto pp = make_process({{"name", "discrete-flow"}, {"noise", c.noise}, {"eta", c.eta}, {"K", 4}, {"dtype", "float64"}});
  const auto& p = dynamic_cast<const CategoricalProcess&>(*pp);
  auto px0 = torch::tensor({{0.1, 0.2, 0.3, 0.4}, {0.7, 0.1, 0.1, 0.1}, {0.25, 0.05, 0.45, 0.25}}, torch::kFloat64);
  const int64_t N = 8000;
  auto gen = testing::seeded(17);
  SamplerOptions so;
  so.denoiser_uses_t = false;
  auto x = make_sampler(c.sampler, so)(p, testing::exact_categorical_denoiser(p, px0), time_grid(p, c.steps), {N, 3}, gen, {});
  EXPECT_TRUE(((x >= 0) & (x < 4)).all().item<bool>()) << "mask or out-of-range states left";
  auto emp = testing::empirical(x, 4);
  for (int64_t l = 0; l < 3; ++l) {
    const double tv = 0.5 * (emp[l] - px0[l]).abs().sum().item<double>();
    std::cout << c.noise << " eta " << c.eta << " " << c.sampler << " position " << l << ": TV " << tv << "\n";
    EXPECT_LT(tv, testing::tv_tol(px0[l], N) + c.slack) << c.noise << "/" << c.sampler << " eta " << c.eta << " pos " << l;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Samplers, DiscreteFlowRecovery,
    ::testing::Values(DfmCase{"mask", "tau-leaping", 0.0, 100, 0.02}, DfmCase{"mask", "euler", 0.0, 100, 0.02},
                      DfmCase{"mask", "tau-leaping", 2.0, 200, 0.03}, DfmCase{"mask", "euler", 2.0, 200, 0.03},
                      DfmCase{"uniform", "tau-leaping", 0.0, 200, 0.03}, DfmCase{"uniform", "euler", 0.0, 200, 0.03},
                      DfmCase{"uniform", "tau-leaping", 1.0, 400, 0.03}, DfmCase{"uniform", "euler", 1.0, 400, 0.03},
                      DfmCase{"mask", "ancestral", 2.0, 50, 0.0}, DfmCase{"uniform", "ancestral", 1.0, 50, 0.0},
                      DfmCase{"uniform", "tweedie", 1.0, 50, 0.0}),
    [](const auto& info) {
      std::string n = info.param.noise + "_" + info.param.sampler + "_eta" + std::to_string(int(info.param.eta * 10));
      for (auto& ch : n)
        if (!isalnum(ch)) ch = '_';
      return n;
    });

}  // namespace
}  // namespace gsdiff
