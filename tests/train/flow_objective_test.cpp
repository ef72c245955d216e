// The weighted objective with weighting flow-matching is the conditional flow-matching loss |u - u_hat|^2.
#include <gtest/gtest.h>

#include "core/gaussian.h"
#include "core/registry.h"
#include "test_util.h"
#include "train/objectives.h"

namespace gsdiff {
namespace {

using torch::Tensor;

// Through make_objective (what `gsdiff train` runs): a network whose output is an arbitrary function of its input
// records (x_t, t); the loss must equal mean over dimensions of (u - out)^2 with the path's velocity
// u = alpha' x0 + sigma' eps, eps = (x_t - alpha x0) / sigma, computed here from the straight-line formulas.
TEST(FlowObjective, WeightedFlowMatchingIsTheVelocityRegression) {
  register_builtins();
  auto proc = make_process({{"name", "gaussian-flow"}, {"steps", 0}, {"alpha_min", 0.01}, {"sigma_min", 0.02}});
  auto& g = dynamic_cast<const GaussianProcess&>(*proc);
  auto gen = testing::seeded(4);
  const int64_t B = 64;
  auto x0 = at::randn({B, 5}, gen, torch::kFloat64);
  Tensor seen_in, seen_t, out;
  DenoiseFn net = [&](const Tensor& in, const Tensor& t) {
    seen_in = in, seen_t = t;
    out = torch::sin(3.0 * in) + t.view({-1, 1});  // anything: an imperfect velocity
    return out;
  };
  auto obj = make_objective(ObjectiveOptions().name("weighted").weighting("flow-matching"), *proc);
  auto r = obj(*proc, net, x0, gen);
  auto t = seen_t.to(torch::kFloat64).view({-1, 1});
  auto a = 1.0 - 0.99 * t, s = 0.02 + 0.98 * t;
  auto xt = seen_in * torch::sqrt(a * a + s * s);  // network_input scales x_t to unit variance (not VP)
  auto eps = (xt - a * x0) / s;
  auto u = -0.99 * x0 + 0.98 * eps;
  auto want = (u - out).square().mean(1);  // [B]
  EXPECT_TRUE(torch::allclose(r.loss, want, 1e-9, 1e-9)) << (r.loss - want).abs().max();
  (void)g;
}

}  // namespace
}  // namespace gsdiff
