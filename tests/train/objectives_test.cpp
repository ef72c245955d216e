// Objectives: one network call per batch, and each loss equals its formula at the sampled (t, x_t).
#include <gtest/gtest.h>

#include "core/gaussian.h"
#include "core/registry.h"
#include "test_util.h"
#include "train/config.h"
#include "train/objectives.h"

using namespace gsdiff;
using namespace gsdiff::testing;
using J = nlohmann::json;
using torch::Tensor;

namespace {

// A network that counts its calls and returns a fixed function of its input (no parameters needed).
DenoiseFn counting_net(int64_t* calls, int64_t K) {
  return [calls, K](const Tensor& in, const Tensor& t) -> Tensor {
    ++*calls;
    if (K == 0) return 0.5 * in.to(torch::kFloat64);                       // Gaussian: [B, D]
    auto logits = torch::linspace(0.2, -0.3, K, torch::kFloat64);            // categorical: [B, L, K]
    return logits.view({1, 1, K}).expand({in.size(0), in.size(1), K}).clone();
  };
}

ObjectiveOptions objective(const std::string& name) {
  return parse_config(J{{"process", J::object()}, {"model", J::object()}, {"data", J::object()},
                        {"objective", {{"name", name}}}}).objective;
}

}  // namespace

class ObjectivesTest : public Seeded {};

TEST_F(ObjectivesTest, ElboAndHybridCallTheNetworkOnce) {
  const std::vector<J> processes = {
      J{{"name", "gaussian-vp"}, {"schedule", "linear-logsnr"}, {"steps", 0}, {"decoder", "gaussian"}},
      J{{"name", "gaussian-vp"}, {"schedule", "cosine"}, {"steps", 50}, {"decoder", "gaussian"}},
      J{{"name", "uniform"}, {"K", 5}, {"steps", 0}},
      J{{"name", "absorbing"}, {"K", 5}, {"steps", 20}}};
  for (const auto& pc : processes) {
    auto p = make_process(pc);
    const bool gauss = dynamic_cast<const GaussianProcess*>(p.get()) != nullptr;
    // Gaussian: 8-bit pixel values as the decoder sees them, v / 127.5 - 1; categorical: tokens.
    auto x0 = gauss ? at::randint(0, 256, {64, 3}, gen, torch::kLong).to(torch::kFloat64) / 127.5 - 1.0
                    : at::randint(0, 5, {64, 4}, gen, torch::kLong);
    for (std::string name : {"elbo", "hybrid"}) {
      int64_t calls = 0;
      auto r = make_objective(objective(name), *p)(*p, counting_net(&calls, gauss ? 0 : 5), x0, gen);
      EXPECT_EQ(calls, 1) << pc.dump() << " " << name;
      ASSERT_EQ(r.loss.sizes(), torch::IntArrayRef({64})) << pc.dump();
      EXPECT_TRUE(torch::isfinite(r.loss).all().item<bool>()) << pc.dump() << " " << name;
      ASSERT_TRUE(r.nelbo.defined());
      // The elbo loss is the bound per dimension.
      if (name == "elbo") {
        EXPECT_TRUE(torch::allclose(r.loss, r.nelbo / double(x0[0].numel())));
      }
    }
  }
}

TEST(ObjectiveConfig, ReconstructionProbMustBeAProbability) {
  for (double q : {0.0, 1.0, -0.5, 2.0}) {
    try {
      parse_config(J{{"process", J::object()}, {"model", J::object()}, {"data", J::object()},
                      {"objective", {{"name", "elbo"}, {"reconstruction_prob", q}}}});
      ADD_FAILURE() << "accepted reconstruction_prob " << q;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("objective.reconstruction_prob"), std::string::npos) << e.what();
    }
  }
}
