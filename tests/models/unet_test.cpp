// Tests for the U-Net denoiser: adapters/heads, DDPM parameter count, conditioning, dropout, gradients.
#include "models/unet.h"

#include "model_test_util.h"
#include "test_util.h"

#include <map>
#include <string>

namespace gsdiff {
namespace {
using testing::max_abs_diff;
using testing::perturb_zero_params;
using testing::tiny_unet;

TEST(UNet, DdpmCifar10HasExactly35746307Parameters) {
  UNet net(UNetOptions{});  // defaults = DDPM CIFAR-10 (construct and count only)
  EXPECT_EQ(count_parameters(*net), 35746307);
}

TEST(UNet, ContinuousInContinuousOut) {
  UNet net(tiny_unet());
  auto out = net(torch::randn({2, 3, 8, 8}), torch::rand({2}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 8, 8}));
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
}

TEST(UNet, LearnedVarianceDoublesChannels) {
  UNet net(tiny_unet().learned_variance(true));
  auto out = net(torch::randn({2, 3, 8, 8}), torch::rand({2}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 6, 8, 8}));
}

TEST(UNet, CategoricalInLogitsOut) {
  UNet net(tiny_unet().input_states(257).input_emb_dim(8).output_states(256));
  auto x = torch::randint(0, 257, {2, 3, 8, 8}, torch::kLong);
  auto out = net(x, torch::rand({2}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 8, 8, 256}));
}

TEST(UNet, ContinuousInLogitsOutAndCategoricalInContinuousOut) {
  UNet a(tiny_unet().output_states(4));
  EXPECT_EQ(a(torch::randn({1, 3, 8, 8}), torch::rand({1})).sizes(), (std::vector<int64_t>{1, 3, 8, 8, 4}));
  UNet b(tiny_unet().input_states(4).input_emb_dim(4).out_channels(2));
  EXPECT_EQ(b(torch::randint(0, 4, {1, 3, 8, 8}), torch::rand({1})).sizes(), (std::vector<int64_t>{1, 2, 8, 8}));
}

TEST(UNet, CategoricalLogitsFollowTheirChannel) {
  // Logit [b,c,h,w,:] must come from conv_out channels c*K..c*K+K-1 (categories last, per channel).
  UNet net(tiny_unet().output_states(3));
  perturb_zero_params(*net);
  net->eval();
  torch::NoGradGuard g;  // both passes on the same kernels (with grad, blocks take models/unet_autograd.h's)
  auto x = torch::randn({1, 3, 8, 8});
  auto t = torch::rand({1});
  auto logits = net(x, t);  // [1, 3, 8, 8, 3]
  auto& conv_out = net->conv_out;
  auto w = conv_out->weight.detach().clone();
  conv_out->weight.narrow(0, 3, 3).add_(1.0);  // channel 1's K logits only
  auto changed = net(x, t);
  conv_out->weight.copy_(w);
  EXPECT_EQ(max_abs_diff(logits.select(1, 0), changed.select(1, 0)), 0.0);
  EXPECT_GT(max_abs_diff(logits.select(1, 1), changed.select(1, 1)), 1e-3);
  EXPECT_EQ(max_abs_diff(logits.select(1, 2), changed.select(1, 2)), 0.0);
}

TEST(UNet, FashionMnist28x28WithThreeLevels) {
  UNetOptions o = tiny_unet();
  o.in_channels(1).ch_mult({1, 2, 2}).attn_resolutions({7}).image_size(28);
  UNet net(o);
  EXPECT_EQ(net(torch::randn({2, 1, 28, 28}), torch::rand({2})).sizes(), (std::vector<int64_t>{2, 1, 28, 28}));
}

TEST(UNet, RejectsSizeNotDivisibleByLevels) {
  UNetOptions o = tiny_unet();
  o.ch_mult({1, 2, 2, 2});  // needs sides divisible by 8
  UNet net(o);
  try {
    net(torch::randn({1, 3, 28, 28}), torch::rand({1}));
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("28x28"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("2^(levels-1) = 8"), std::string::npos) << e.what();
  }
}

TEST(UNet, RejectsWrongDtypeAndChannels) {
  UNet net(tiny_unet());
  EXPECT_THROW(net(torch::randn({1, 2, 8, 8}), torch::rand({1})), std::invalid_argument);
  EXPECT_THROW(net(torch::zeros({1, 3, 8, 8}, torch::kLong), torch::rand({1})), std::invalid_argument);
  EXPECT_THROW(UNet(tiny_unet().num_groups(5)), std::invalid_argument);
  EXPECT_THROW(UNet(tiny_unet().output_states(3).learned_variance(true)), std::invalid_argument);
}

TEST(UNet, FreshNetOutputsZeroAsDdpmInit) {
  UNet net(tiny_unet());
  EXPECT_EQ(net(torch::randn({2, 3, 8, 8}), torch::rand({2})).abs().max().item<double>(), 0.0);
}

TEST(UNet, TimeConditionsTheOutput) {
  UNet net(tiny_unet());
  perturb_zero_params(*net);
  net->eval();
  auto x = torch::randn({2, 3, 8, 8});
  auto a = net(x, torch::full({2}, 0.1)), b = net(x, torch::full({2}, 0.9));
  EXPECT_GT(max_abs_diff(a, b), 1e-3);
}

TEST(UNet, ClassLabelConditionsAndNullClassIsDefault) {
  UNet net(tiny_unet().num_classes(10));
  perturb_zero_params(*net);
  net->eval();
  auto x = torch::randn({2, 3, 8, 8});
  auto t = torch::rand({2});
  auto y0 = net(x, t, torch::zeros({2}, torch::kLong)), y1 = net(x, t, torch::ones({2}, torch::kLong));
  EXPECT_GT(max_abs_diff(y0, y1), 1e-3);
  auto none = net(x, t), null = net(x, t, torch::full({2}, 10, torch::kLong));
  EXPECT_EQ(max_abs_diff(none, null), 0.0);
}

TEST(UNet, DropoutOnlyInTrainMode) {
  UNet net(tiny_unet().dropout(0.5));
  perturb_zero_params(*net);
  auto x = torch::randn({2, 3, 8, 8});
  auto t = torch::rand({2});
  net->eval();
  EXPECT_EQ(max_abs_diff(net(x, t), net(x, t)), 0.0);
  net->train();
  EXPECT_GT(max_abs_diff(net(x, t), net(x, t)), 1e-4);
}

TEST(UNet, SeededConstructionIsDeterministic) {
  auto run = [](uint64_t seed) {
    torch::manual_seed(seed);
    UNet net(tiny_unet());
    perturb_zero_params(*net);
    net->eval();
    return net(torch::randn({2, 3, 8, 8}), torch::rand({2}));
  };
  EXPECT_EQ(max_abs_diff(run(7), run(7)), 0.0);
  EXPECT_GT(max_abs_diff(run(7), run(8)), 1e-4);
}

TEST(UNet, GradientsReachEveryParameter) {
  // The zero-initialised layers are perturbed first, else they would block all upstream grads.
  UNet net(tiny_unet().num_classes(3).input_states(5).input_emb_dim(4).output_states(5));
  perturb_zero_params(*net);
  auto x = torch::randint(0, 5, {2, 3, 8, 8});
  auto out = net(x, torch::rand({2}), torch::tensor({0, 3}, torch::kLong));
  (out * torch::randn_like(out)).sum().backward();
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST(UNet, FreshNetStillTrainsItsOutputLayer) {
  // Without perturbation: the zero output conv gets a nonzero gradient at init (DDPM init).
  UNet net(tiny_unet());
  auto out = net(torch::randn({2, 3, 8, 8}), torch::rand({2}));
  (out - torch::randn_like(out)).pow(2).mean().backward();
  EXPECT_GT(net->conv_out->weight.grad().abs().sum().item<double>(), 0.0);
}

TEST(UNet, ChannelsLastInputGivesSameOutput) {
  UNet net(tiny_unet());
  perturb_zero_params(*net);
  net->eval();
  auto x = torch::randn({2, 3, 8, 8});
  auto t = torch::rand({2});
  auto a = net(x, t), b = net(x.contiguous(at::MemoryFormat::ChannelsLast), t);
  EXPECT_LT(max_abs_diff(a, b), 1e-4);
}

TEST(UNet, AttentionBlockEqualsTheFormula) {
  // softmax(q^T k / sqrt(Dh)) over the H*W positions per head, written out on [B, heads, N, Dh], against
  // AttnBlock's own layout (LibTorch 1.13: bmm on channels-first views); values and input gradients.
  for (int64_t heads : {1, 2}) {
    torch::manual_seed(3);
    AttnBlock a(16, heads, 4);
    perturb_zero_params(*a);
    auto x = torch::randn({3, 16, 4, 4}).requires_grad_(true);
    auto xr = x.detach().clone().requires_grad_(true);
    auto qkv = a->qkv(a->norm(xr)).flatten(2).unflatten(1, {3, heads, -1});  // [B, 3, heads, Dh, N]
    auto q = qkv.select(1, 0).transpose(-2, -1), k = qkv.select(1, 1).transpose(-2, -1),
         v = qkv.select(1, 2).transpose(-2, -1);  // [B, heads, N, Dh]
    auto w = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(16.0 / heads), -1);
    auto ref = xr + a->proj(torch::matmul(w, v).transpose(-2, -1).reshape({3, 16, 4, 4}));
    auto out = a(x);
    EXPECT_LT(max_abs_diff(out, ref), 1e-5) << heads;
    auto g = torch::randn_like(out);
    (out * g).sum().backward();
    (ref * g).sum().backward();
    EXPECT_LT(max_abs_diff(x.grad(), xr.grad()), 1e-5) << heads;
  }
}

// The DDPM U-Net written out block by block (as bench/compare_python.py has it: each ResBlock applies its
// own Dense(silu(temb))), on the modules of `n`; UNetImpl::forward batches the temb projections.
torch::Tensor per_block_reference(UNetImpl& n, const torch::Tensor& x, const torch::Tensor& t) {
  const auto& o = n.options;
  const int64_t levels = o.ch_mult().size();
  auto temb = n.temb2(torch::silu(n.temb1(n.time_embed(t))));
  auto h = n.conv_in(x);
  std::vector<torch::Tensor> hs{h};
  size_t i = 0;
  for (int64_t l = 0; l < levels; ++l) {
    for (int64_t b = 0; b < o.num_res_blocks(); ++b, ++i) {
      h = n.down_res[i](h, temb);
      if (n.down_attn[i]) h = n.down_attn[i](h);
      hs.push_back(h);
    }
    if (l + 1 < levels) hs.push_back(h = n.downsample[l](h));
  }
  h = n.mid2(n.mid_attn(n.mid1(h, temb)), temb);
  i = 0;
  for (int64_t l = levels - 1; l >= 0; --l) {
    for (int64_t b = 0; b <= o.num_res_blocks(); ++b, ++i) {
      h = n.up_res[i](torch::cat({h, hs.back()}, 1), temb);
      hs.pop_back();
      if (n.up_attn[i]) h = n.up_attn[i](h);
    }
    if (l > 0) h = n.upsample[l](h);
  }
  return n.conv_out(torch::silu(n.norm_out(h)));
}

TEST(UNet, ForwardEqualsThePerBlockReference) {
  UNet net(tiny_unet().dropout(0.0));
  perturb_zero_params(*net);
  auto x = torch::randn({3, 3, 8, 8});
  auto t = torch::rand({3});
  auto out = net(x, t);
  auto g = torch::randn_like(out);
  (out * g).sum().backward();
  std::map<std::string, torch::Tensor> grads;
  for (auto& p : net->named_parameters()) grads[p.key()] = p.value().grad().clone();
  net->zero_grad();
  auto ref = per_block_reference(*net, x, t);
  (ref * g).sum().backward();
  EXPECT_LT(max_abs_diff(out, ref), 1e-5);
  for (auto& p : net->named_parameters())
    EXPECT_LT(max_abs_diff(grads[p.key()], p.value().grad()), 1e-5 * (1 + p.value().grad().abs().max().item<double>()))
        << p.key();
}

TEST(UNet, ResBlockWithProjectionGivenEqualsForward) {
  ResBlock b(8, 16, 32, 0.0, 4);
  perturb_zero_params(*b);
  auto x = torch::randn({2, 8, 4, 4});
  auto temb = torch::randn({2, 32});
  EXPECT_TRUE(torch::equal(b(x, temb), b->forward_temb_proj(x, b->temb_proj(torch::silu(temb)))));
}

TEST(UNet, OptionsJsonRoundTripAndStrictKeys) {
  auto o = unet_options_from_json({{"ch", 64}, {"ch_mult", {1, 2}}, {"dropout", 0.0}, {"num_classes", 10}});
  EXPECT_EQ(o.ch(), 64);
  EXPECT_EQ(o.ch_mult(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(o.num_classes(), 10);
  auto back = unet_options_from_json(unet_options_to_json(o));
  EXPECT_EQ(unet_options_to_json(back), unet_options_to_json(o));
  try {
    unet_options_from_json({{"chh", 64}});
    FAIL();
  } catch (const ModelConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'chh'"), std::string::npos) << e.what();
  }
  try {
    unet_options_from_json({{"ch", "wide"}});
    FAIL();
  } catch (const ModelConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'ch'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(unet_options_from_json({{"ch_mult", {1, 2.5}}}), ModelConfigError);
}

TEST(UNet, Bf16AutocastForwardOnCpu) {
  UNet net(tiny_unet().input_states(5).input_emb_dim(4).num_classes(2));
  perturb_zero_params(*net);
  net->eval();
  auto x = torch::randint(0, 5, {2, 3, 8, 8});
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

TEST(UNet, Bf16AutocastForward_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  UNet net(tiny_unet().num_classes(2));
  perturb_zero_params(*net);
  net->eval();
  net->to(torch::kCUDA);
  auto x = torch::randn({2, 3, 8, 8}, torch::kCUDA).contiguous(at::MemoryFormat::ChannelsLast);
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
