// Tests for trace_model: a copy traced at one batch size reproduces the eager model at another.
#include "models/trace.h"

#include <sstream>

#include "model_test_util.h"
#include "test_util.h"

namespace gsdiff {
namespace {
using testing::max_abs_diff;
using testing::perturb_zero_params;

torch::Tensor run(torch::jit::Module& m, std::vector<torch::jit::IValue> in) {
  return m.forward(std::move(in)).toTensor();
}

TEST(TraceModel, UNetTracedAtBatch2RunsAtBatch5) {
  UNet unet(testing::tiny_unet());
  perturb_zero_params(*unet);
  auto net = as_denoiser(unet);
  auto traced = trace_model(net, torch::randn({2, 3, 8, 8}), torch::rand({2}));
  EXPECT_TRUE(net->is_training());  // mode restored
  net->eval();
  auto x = torch::randn({5, 3, 8, 8});
  auto t = torch::rand({5});
  auto eager = net(x, t);
  EXPECT_LT(max_abs_diff(run(traced, {x, t}), eager), 1e-5);
  // A different spatial size with the same level layout works too (no size frozen).
  auto x16 = torch::randn({3, 3, 16, 16});
  auto t3 = torch::rand({3});
  EXPECT_LT(max_abs_diff(run(traced, {x16, t3}), net(x16, t3)), 1e-5);
}

TEST(TraceModel, CategoricalClassConditionalUNet) {
  UNet unet(testing::tiny_unet().input_states(5).input_emb_dim(4).output_states(5).num_classes(3));
  perturb_zero_params(*unet);
  auto net = as_denoiser(unet);
  auto traced = trace_model(net, torch::randint(0, 5, {2, 3, 8, 8}), torch::rand({2}), torch::tensor({0, 3}));
  net->eval();
  auto x = torch::randint(0, 5, {5, 3, 8, 8});
  auto t = torch::rand({5});
  auto y = torch::tensor({0, 1, 2, 3, 1});
  EXPECT_LT(max_abs_diff(run(traced, {x, t, y}), net(x, t, y)), 1e-5);
}

TEST(TraceModel, TransformerTracedAtBatch2RunsAtBatch5AndOtherLength) {
  for (const std::string pos : {"rotary", "learned"}) {
    Transformer tr(testing::tiny_transformer().positions(pos).max_len(32));
    perturb_zero_params(*tr);
    auto net = as_denoiser(tr);
    auto traced = trace_model(net, torch::randint(0, 6, {2, 12}), torch::rand({2}));
    net->eval();
    for (int64_t L : {12, 20}) {
      auto x = torch::randint(0, 6, {5, L});
      auto t = torch::rand({5});
      EXPECT_LT(max_abs_diff(run(traced, {x, t}), net(x, t)), 1e-5) << pos << " L=" << L;
    }
  }
}

TEST(TraceModel, ContinuousTransformer) {
  Transformer tr(testing::tiny_transformer().input_dim(8).out_dim(8));
  perturb_zero_params(*tr);
  auto net = as_denoiser(tr);
  auto traced = trace_model(net, torch::randn({2, 6, 8}), torch::rand({2}));
  net->eval();
  auto x = torch::randn({5, 9, 8});
  auto t = torch::rand({5});
  EXPECT_LT(max_abs_diff(run(traced, {x, t}), net(x, t)), 1e-5);
}

TEST(TraceModel, SaveLoadRoundTripAndDetachedParameters) {
  Transformer tr(testing::tiny_transformer());
  perturb_zero_params(*tr);
  auto net = as_denoiser(tr);
  auto traced = trace_model(net, torch::randint(0, 6, {2, 12}), torch::rand({2}));
  EXPECT_EQ(traced.named_parameters().size(), net->parameters().size());
  std::stringstream ss;
  traced.save(ss);
  auto loaded = torch::jit::load(ss);
  net->eval();
  auto x = torch::randint(0, 6, {4, 7});
  auto t = torch::rand({4});
  auto before = net(x, t);
  EXPECT_LT(max_abs_diff(run(loaded, {x, t}), before), 1e-5);
  // The export holds copies: changing the model afterwards leaves it unchanged.
  {
    torch::NoGradGuard g;
    for (auto& p : net->parameters()) p.add_(0.1);
  }
  EXPECT_LT(max_abs_diff(run(traced, {x, t}), before), 1e-5);
}

}  // namespace
}  // namespace gsdiff
