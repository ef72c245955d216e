// evaluate_bound_fn, what `gsdiff eval` reports: exact fields, Monte-Carlo passes until a target standard error.
#include <gtest/gtest.h>

#include "core/gaussian.h"
#include "core/registry.h"
#include "data/factory.h"
#include "train/evaluate.h"

using namespace gsdiff;
using J = nlohmann::json;
using torch::Tensor;

namespace {
std::shared_ptr<data::Dataset> toy() { return data::make_dataset(J{{"name", "toy-gmm"}, {"n", 400}, {"split", "test"}}); }
// The process: VP, linear log-SNR (finite SNR at both ends), x0 parameterisation, Gaussian decoder.
std::unique_ptr<Process> vp() {
  return make_process(J{{"name", "gaussian-vp"}, {"schedule", "linear-logsnr"}, {"steps", 0}, {"parameterization", "x0"},
                        {"decoder", "gaussian"}});
}
// A fixed imperfect model for 2-d real data: the posterior mean under a N(0, 1) prior on x0.
DenoiseFn shrink(const Process& p) {
  auto& g = dynamic_cast<const GaussianProcess&>(p);
  return [&g](const Tensor& xt, const Tensor& t) {
    auto v = g.at(t, xt);
    return v.alpha * xt / (v.alpha * v.alpha + v.sigma * v.sigma);
  };
}
}  // namespace

TEST(Evaluate, ExactReportsConvergedQuadratureWithNodesAndError) {
  register_builtins();
  auto p = vp();
  auto r = evaluate_bound_fn(*p, shrink(*p), *toy(), EvalOptions().exact(true).quadrature_tol(1e-4), torch::kCPU);
  auto j = r.to_json();
  EXPECT_EQ(j["estimate"], "exact");
  EXPECT_GT(j["quadrature_nodes"].get<int64_t>(), 84);
  EXPECT_LE(j["quadrature_error"].get<double>(), 1e-4);
  EXPECT_FALSE(j.contains("time_samples"));
  // A fixed rule is not called exact.
  auto f = evaluate_bound_fn(*p, shrink(*p), *toy(), EvalOptions().exact(true).quadrature_nodes(4), torch::kCPU);
  EXPECT_EQ(f.to_json()["estimate"], "quadrature");
  EXPECT_TRUE(f.to_json().contains("warning"));
}

TEST(Evaluate, TargetStderrAddsPassesAndSaysWhetherItWasMet) {
  register_builtins();
  auto p = vp();
  auto ds = toy();
  auto one = evaluate_bound_fn(*p, shrink(*p), *ds, EvalOptions().time_sampling("uniform"), torch::kCPU);
  // A target above one pass's standard error: one pass, reached.
  auto easy = evaluate_bound_fn(*p, shrink(*p), *ds, EvalOptions().time_sampling("uniform").target_stderr(2 * one.stderr_), torch::kCPU);
  EXPECT_EQ(easy.passes, 1);
  EXPECT_TRUE(easy.to_json()["target_reached"].get<bool>());
  // A target below the spread over examples (which no number of t removes): max_passes, and said so.
  auto hard = evaluate_bound_fn(*p, shrink(*p), *ds,
                                EvalOptions().time_sampling("uniform").target_stderr(1e-6).max_passes(4).time_samples(2), torch::kCPU);
  auto j = hard.to_json();
  EXPECT_EQ(hard.passes, 4);
  EXPECT_EQ(j["time_samples"].get<int64_t>(), 8);
  EXPECT_FALSE(j["target_reached"].get<bool>());
  // The passes average per example: the 4-pass mean agrees with the converged bound of the same examples
  // within 5 one-pass standard errors (their difference is t noise only, and it shrinks with passes).
  auto ex = evaluate_bound_fn(*p, shrink(*p), *ds, EvalOptions().exact(true), torch::kCPU);
  EXPECT_NEAR(hard.mean, ex.mean, 5 * one.stderr_);
}
