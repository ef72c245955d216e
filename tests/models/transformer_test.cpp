// Tests for the DiT-style transformer denoiser: adapters, counts, conditioning, dropout, gradients.
#include "models/transformer.h"

#include "model_test_util.h"
#include "test_util.h"

namespace gsdiff {
namespace {
using testing::max_abs_diff;
using testing::perturb_zero_params;
using testing::tiny_transformer;

TEST(Transformer, TokensInLogitsOut) {
  Transformer net(tiny_transformer());
  auto out = net(torch::randint(0, 6, {3, 10}), torch::rand({3}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 10, 5}));
}

TEST(Transformer, ContinuousInLogitsOrVectorsOut) {
  Transformer logits(tiny_transformer().input_dim(8));
  EXPECT_EQ(logits(torch::randn({2, 7, 8}), torch::rand({2})).sizes(), (std::vector<int64_t>{2, 7, 5}));
  Transformer vectors(tiny_transformer().input_dim(8).out_dim(8));
  EXPECT_EQ(vectors(torch::randn({2, 7, 8}), torch::rand({2})).sizes(), (std::vector<int64_t>{2, 7, 8}));
}

TEST(Transformer, LearnedPositionsWorkAndCheckMaxLen) {
  Transformer net(tiny_transformer().positions("learned").max_len(16));
  EXPECT_EQ(net(torch::randint(0, 6, {2, 16}), torch::rand({2})).sizes(), (std::vector<int64_t>{2, 16, 5}));
  EXPECT_THROW(net(torch::randint(0, 6, {2, 17}), torch::rand({2})), std::invalid_argument);
}

TEST(Transformer, ExactParameterCounts) {
  // Tiny: embed 6*32; time 256*16+16 + 16*16+16; per block 3*32^2 + 32^2 + (32*128+128) +
  // (128*32+32) + (16*192+192); final ada 16*64+64; head 32*5+5.
  Transformer tiny(tiny_transformer());
  const int64_t block = 3 * 1024 + 1024 + (32 * 128 + 128) + (128 * 32 + 32) + (16 * 192 + 192);
  EXPECT_EQ(count_parameters(*tiny),
            6 * 32 + (256 * 16 + 16) + (16 * 16 + 16) + 2 * block + (16 * 64 + 64) + (32 * 5 + 5));
}

TEST(Transformer, RejectsBadInputsAndOptions) {
  Transformer net(tiny_transformer());
  EXPECT_THROW(net(torch::randn({2, 5}), torch::rand({2})), std::invalid_argument);
  EXPECT_THROW(Transformer(tiny_transformer().num_heads(5)), std::invalid_argument);
  EXPECT_THROW(Transformer(tiny_transformer().positions("alibi")), std::invalid_argument);
}

TEST(Transformer, AdaLnZeroStartsAtZeroOutput) {
  Transformer net(tiny_transformer());
  EXPECT_EQ(net(torch::randint(0, 6, {2, 4}), torch::rand({2})).abs().max().item<double>(), 0.0);
}

TEST(Transformer, TimeConditionsTheOutput) {
  Transformer net(tiny_transformer());
  perturb_zero_params(*net);
  net->eval();
  auto x = torch::randint(0, 6, {2, 9});
  EXPECT_GT(max_abs_diff(net(x, torch::full({2}, 0.05)), net(x, torch::full({2}, 0.95))), 1e-3);
}

// time_conditioning = false (MDLM's time-independent denoiser): the output ignores t, the option survives the
// JSON round trip, and the network says so (uses_time) for the samplers that rely on it.
TEST(Transformer, TimeIndependentOptionIgnoresT) {
  torch::manual_seed(4);
  Transformer net(tiny_transformer().time_conditioning(false));
  perturb_zero_params(*net);
  net->eval();  // no dropout
  auto x = torch::randint(0, 6, {2, 9});
  EXPECT_TRUE(torch::equal(net(x, torch::full({2}, 0.1)), net(x, torch::full({2}, 0.9))));
  EXPECT_FALSE(net->uses_time());
  auto j = net->config();
  EXPECT_EQ(j.at("time_conditioning"), false);
  EXPECT_FALSE(transformer_options_from_json(j).time_conditioning());
  Transformer timed(tiny_transformer());
  EXPECT_TRUE(timed->uses_time());
  EXPECT_FALSE(timed->config().contains("time_conditioning"));  // the default stays out: older configs compare equal
  EXPECT_EQ(count_parameters(*net), count_parameters(*timed));
}

TEST(Transformer, ClassLabelConditionsAndNullClassIsDefault) {
  Transformer net(tiny_transformer().num_classes(4));
  perturb_zero_params(*net);
  net->eval();
  auto x = torch::randint(0, 6, {2, 9});
  auto t = torch::rand({2});
  EXPECT_GT(max_abs_diff(net(x, t, torch::zeros({2}, torch::kLong)), net(x, t, torch::ones({2}, torch::kLong))), 1e-3);
  EXPECT_EQ(max_abs_diff(net(x, t), net(x, t, torch::full({2}, 4, torch::kLong))), 0.0);
}

TEST(Transformer, IsBidirectional) {
  // Changing the last token must change the first position's output (no causal mask).
  Transformer net(tiny_transformer());
  perturb_zero_params(*net);
  net->eval();
  auto x = torch::zeros({1, 6}, torch::kLong);
  auto x2 = x.clone();
  x2[0][5] = 3;
  auto t = torch::rand({1});
  EXPECT_GT(max_abs_diff(net(x, t).select(1, 0), net(x2, t).select(1, 0)), 1e-5);
}

TEST(Transformer, DropoutOnlyInTrainMode) {
  Transformer net(tiny_transformer().dropout(0.5));
  perturb_zero_params(*net);
  auto x = torch::randint(0, 6, {2, 9});
  auto t = torch::rand({2});
  net->eval();
  EXPECT_EQ(max_abs_diff(net(x, t), net(x, t)), 0.0);
  net->train();
  EXPECT_GT(max_abs_diff(net(x, t), net(x, t)), 1e-4);
}

TEST(Transformer, SeededConstructionIsDeterministic) {
  auto run = [](uint64_t seed) {
    torch::manual_seed(seed);
    Transformer net(tiny_transformer());
    perturb_zero_params(*net);
    net->eval();
    return net(torch::randint(0, 6, {2, 9}), torch::rand({2}));
  };
  EXPECT_EQ(max_abs_diff(run(3), run(3)), 0.0);
  EXPECT_GT(max_abs_diff(run(3), run(4)), 1e-4);
}

TEST(Transformer, GradientsReachEveryParameter) {
  for (const std::string pos : {"rotary", "learned"}) {
    Transformer net(tiny_transformer().num_classes(2).positions(pos));
    perturb_zero_params(*net);
    auto out = net(torch::randint(0, 6, {2, 9}), torch::rand({2}), torch::tensor({0, 2}, torch::kLong));
    (out * torch::randn_like(out)).sum().backward();
    for (const auto& p : net->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << pos << " " << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << pos << " " << p.key();
    }
  }
}

TEST(Transformer, FreshNetGradientsFlowAfterOneStep) {
  // Honest adaLN-zero check without perturbation: at init only the head/final modulation get
  // gradients; after one optimizer step the block modulations receive nonzero gradients too.
  Transformer net(tiny_transformer().dropout(0.0));
  torch::optim::SGD opt(net->parameters(), 0.5);
  auto x = torch::randint(0, 6, {4, 9});
  auto target = torch::randint(0, 5, {4, 9});
  auto loss_fn = [&] {
    opt.zero_grad();
    auto out = net(x, torch::rand({4}));
    auto loss = torch::nn::functional::cross_entropy(out.reshape({-1, 5}), target.reshape({-1}));
    loss.backward();
  };
  loss_fn();
  EXPECT_GT(net->head->weight.grad().abs().sum().item<double>(), 0.0);
  EXPECT_EQ(net->blocks[0]->ada->weight.grad().abs().sum().item<double>(), 0.0);
  opt.step();
  loss_fn();
  EXPECT_GT(net->blocks[0]->ada->weight.grad().abs().sum().item<double>(), 0.0);
}

TEST(Transformer, OptionsJsonStrict) {
  auto o = transformer_options_from_json({{"type", "transformer"}, {"dim", 48}, {"positions", "learned"}});
  EXPECT_EQ(o.dim(), 48);
  EXPECT_EQ(o.positions(), "learned");
  EXPECT_EQ(transformer_options_to_json(transformer_options_from_json(transformer_options_to_json(o))),
            transformer_options_to_json(o));
  try {
    transformer_options_from_json({{"layers", 3}});
    FAIL();
  } catch (const ModelConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'layers'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(transformer_options_from_json({{"dropout", "0.1"}}), ModelConfigError);
}

TEST(Transformer, Bf16AutocastForwardOnCpu) {
  Transformer net(tiny_transformer().num_classes(2));
  perturb_zero_params(*net);
  net->eval();
  auto x = torch::randint(0, 6, {2, 16});
  auto t = torch::rand({2});
  auto ref = net(x, t);
  torch::Tensor out;
  {
    testing::Bf16Autocast autocast(/*cuda=*/false);
    out = net(x, t);
  }
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  EXPECT_LT(max_abs_diff(out.to(torch::kFloat), ref), 0.1 * ref.abs().max().item<double>() + 1e-2);
}

TEST(Transformer, Bf16AutocastForward_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  Transformer net(tiny_transformer());
  perturb_zero_params(*net);
  net->eval();
  net->to(torch::kCUDA);
  auto x = torch::randint(0, 6, {2, 16}, torch::TensorOptions(torch::kCUDA).dtype(torch::kLong));
  auto t = torch::rand({2}, torch::kCUDA);
  auto ref = net(x, t);
  torch::Tensor out;
  {
    testing::Bf16Autocast autocast(/*cuda=*/true);
    out = net(x, t);
  }
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  EXPECT_LT(max_abs_diff(out.to(torch::kFloat), ref), 0.1 * ref.abs().max().item<double>() + 1e-2);
}

}  // namespace
}  // namespace gsdiff
