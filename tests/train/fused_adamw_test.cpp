// Flat parameters and fused AdamW against LibTorch's per-tensor AdamW, clip_grad_norm_ and EMA.
#include <gtest/gtest.h>

#include <sstream>

#include "train/ema.h"
#include "train/flat_params.h"
#include "train/fused_adamw.h"

namespace gsdiff {
namespace {

// x [B,4,5,5] -> [B,3]: a conv, a norm and two linears (weights and biases of several shapes).
struct NetImpl : torch::nn::Module {
  NetImpl() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 6, 3)));
    norm = register_module("norm", torch::nn::GroupNorm(2, 6));
    fc1 = register_module("fc1", torch::nn::Linear(6 * 9, 11));
    fc2 = register_module("fc2", torch::nn::Linear(11, 3));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto h = torch::silu(norm(conv(x)));         // [B,6,3,3]
    return fc2(torch::silu(fc1(h.flatten(1))));  // [B,3]
  }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Net);

Net make_net(torch::Dtype dtype = torch::kFloat) {
  torch::manual_seed(3);
  Net n;
  torch::NoGradGuard ng;
  for (auto& p : n->parameters()) p.add_(0.1 * torch::randn(p.sizes()));  // non-zero biases, norm affine
  n->to(dtype);
  return n;
}

torch::Tensor loss_of(Net& n, int64_t step) {
  auto gen = at::detail::createCPUGenerator(100 + step);
  auto dtype = n->fc1->weight.scalar_type();
  auto x = at::randn({8, 4, 5, 5}, gen).to(dtype);
  auto y = at::randn({8, 3}, gen).to(dtype);
  return torch::mse_loss(n->forward(x), y);
}

// Same elementwise ops in the same order on both sides; the differences are which elements fall in the
// vectorised (FMA) part of a kernel and which in its scalar tail (a flat buffer aligns the tensors
// differently), and, on LibTorch 2.13, ATen's float sqrt, which is not correctly rounded on AVX-512 (up to
// 0.74 ulp; the one-pass kernel's is). That is ~1 ulp (6e-8 relative) per op, a few ops per step, so 1e-6
// relative to the tensor's largest entry: an update p (1 - lr wd) - step that cancels to a small entry keeps
// the absolute rounding error of its operands, which an element-relative tolerance would not allow.
void expect_close(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double scale = b.abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(a, b, /*rtol=*/1e-6, /*atol=*/1e-6 * scale + 1e-12))
      << what << ": max |diff| " << (a - b).abs().max().item<double>() << ", max |b| " << scale;
}

AdamWHyper hyper() {
  AdamWHyper h;
  h.lr = 3e-2, h.beta1 = 0.8, h.beta2 = 0.95, h.eps = 1e-6, h.weight_decay = 0.1;
  return h;
}

TEST(FlatParams, ViewsAliasParametersAndGradients) {
  Net n = make_net();
  const auto before = n->fc1->weight.detach().clone();
  FlatParams flat(n->parameters());
  ASSERT_EQ(flat.groups().size(), 1u);
  EXPECT_EQ(flat.numel(), 4 * 6 * 9 + 6 + 6 + 6 + 54 * 11 + 11 + 11 * 3 + 3);
  EXPECT_TRUE(flat.aliased());
  EXPECT_TRUE(torch::equal(n->fc1->weight, before));  // values were copied in
  {
    torch::NoGradGuard ng;
    flat.groups()[0].data.fill_(0.5);  // writing the buffer writes the module's weights
  }
  EXPECT_TRUE(torch::equal(n->conv->weight, torch::full_like(n->conv->weight, 0.5)));
  EXPECT_TRUE(torch::equal(n->fc2->bias, torch::full_like(n->fc2->bias, 0.5)));
  loss_of(n, 0).backward();  // backward accumulates into the flat gradient
  EXPECT_TRUE(flat.aliased());
  const auto& g = flat.groups()[0];
  const int64_t off = g.offset.back();  // fc2.bias, the last parameter
  EXPECT_TRUE(torch::equal(g.grad.narrow(0, off, 3), n->fc2->bias.grad()));
  EXPECT_GT(g.grad.abs().sum().item<double>(), 0.0);
  flat.zero_grad();
  EXPECT_EQ(n->fc1->weight.grad().abs().sum().item<double>(), 0.0);
}

TEST(FlatParams, RebindAfterLoadRestoresAliasing) {
  Net n = make_net(), other = make_net();
  {
    torch::NoGradGuard ng;
    for (auto& p : other->parameters()) p.mul_(2);
  }
  FlatParams flat(n->parameters());
  std::stringstream buf;
  torch::serialize::OutputArchive out;
  other->save(out);
  out.save_to(buf);
  torch::serialize::InputArchive in;
  in.load_from(buf);
  n->load(in);  // Tensor::set_: the parameters leave the buffer
  EXPECT_FALSE(flat.aliased());
  flat.rebind();
  EXPECT_TRUE(flat.aliased());
  EXPECT_TRUE(torch::equal(n->fc1->weight, other->fc1->weight));
  EXPECT_TRUE(torch::equal(flat.groups()[0].data.narrow(0, 0, 4 * 6 * 9).view({6, 4, 3, 3}), other->conv->weight));
}

// float32 on the CPU takes FusedAdamW's one-pass kernel (875 parameters: the 8-wide loop and its scalar
// tail); float64 the whole-buffer ATen ops.
void expect_equals_torch_adamw(torch::Dtype dtype) {
  Net ref = make_net(dtype), net = make_net(dtype);
  const auto h = hyper();
  torch::optim::AdamW torch_opt(ref->parameters(), torch::optim::AdamWOptions(h.lr)
                                                       .betas(std::make_tuple(h.beta1, h.beta2))
                                                       .eps(h.eps)
                                                       .weight_decay(h.weight_decay));
  FlatParams flat(net->parameters());
  FusedAdamW opt(flat, h);
  const auto init = net->fc1->weight.detach().clone();
  for (int64_t s = 0; s < 6; ++s) {
    if (s == 3) {  // the trainer's schedule changes lr between steps
      torch_opt.param_groups()[0].options().set_lr(h.lr / 3);
      opt.options().lr = h.lr / 3;
    }
    torch_opt.zero_grad();
    flat.zero_grad();
    loss_of(ref, s).backward();
    loss_of(net, s).backward();
    torch_opt.step();
    opt.step();
    auto rp = ref->named_parameters();
    for (auto& p : net->named_parameters())
      expect_close(p.value(), rp[p.key()], "step " + std::to_string(s) + " " + p.key());
  }
  EXPECT_EQ(opt.steps(), 6);
  EXPECT_GT((net->fc1->weight - init).abs().max().item<double>(), 1e-2);  // it moved
  // Moments: the flat slices equal torch's per-tensor state.
  const auto& g = flat.groups()[0];
  auto params = ref->parameters();
  for (size_t k = 0; k < g.index.size(); ++k) {
    const auto& p = params[g.index[k]];
    auto& st = static_cast<torch::optim::AdamWParamState&>(
        *torch_opt.state().at(torch_optim_state_key(p)));
    expect_close(opt.exp_avg()[0].narrow(0, g.offset[k], p.numel()).view(p.sizes()), st.exp_avg(), "exp_avg");
    expect_close(opt.exp_avg_sq()[0].narrow(0, g.offset[k], p.numel()).view(p.sizes()), st.exp_avg_sq(), "exp_avg_sq");
    EXPECT_EQ(st.step(), opt.steps());
  }
}

TEST(FusedAdamW, OnePassEqualsTheOpSequenceBitForBit) {
  // The float32 CPU kernel against step()'s op sequence on the same buffers. 4096 elements: every element
  // in the ops' vectorised loops, whose arithmetic (FMAs included) the kernel reproduces on AVX2 + FMA.
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) GTEST_SKIP() << "no AVX2 + FMA";
#else
  GTEST_SKIP() << "x86-64 only";
#endif
  torch::manual_seed(5);
  auto w = torch::randn({4096}).requires_grad_(true);
  FlatParams flat({w});
  FusedAdamW opt(flat, hyper());
  const auto h = hyper();
  auto p = flat.groups()[0].data.detach().clone(), m = torch::zeros_like(p), v = torch::zeros_like(p);
  for (int64_t step = 1; step <= 4; ++step) {
    auto g = torch::randn({4096}) * 0.1;
    flat.groups()[0].grad.copy_(g);
    opt.step();
    const double bc1 = 1 - std::pow(h.beta1, double(step)), bc2 = 1 - std::pow(h.beta2, double(step));
    p.mul_(1 - h.lr * h.weight_decay);
    m.mul_(h.beta1).add_(g, 1 - h.beta1);
    v.mul_(h.beta2).addcmul_(g, g, 1 - h.beta2);
    // The kernel's sqrt is IEEE's, correctly rounded; ATen's float sqrt is on LibTorch 1.13 but not on 2.13's
    // AVX-512 path (up to 0.74 ulp), so the reference takes it in float64, rounded once to float.
    auto den = torch::sqrt(v.to(torch::kDouble)).to(torch::kFloat).div_(std::sqrt(bc2)).add_(h.eps);
    p.addcdiv_(m, den, -h.lr / bc1);
    EXPECT_TRUE(torch::equal(flat.groups()[0].data, p)) << "step " << step;
    EXPECT_TRUE(torch::equal(opt.exp_avg()[0], m)) << "step " << step;
    EXPECT_TRUE(torch::equal(opt.exp_avg_sq()[0], v)) << "step " << step;
  }
}

TEST(FusedAdamW, EqualsTorchAdamWStepForStep) { expect_equals_torch_adamw(torch::kFloat); }
TEST(FusedAdamW, EqualsTorchAdamWStepForStepInFloat64) { expect_equals_torch_adamw(torch::kFloat64); }

TEST(FlatParams, ClipEqualsClipGradNorm) {
  for (double max_norm : {0.05, 1e3, std::numeric_limits<double>::infinity()}) {
    Net ref = make_net(), net = make_net();
    FlatParams flat(net->parameters());
    loss_of(ref, 0).backward();
    loss_of(net, 0).backward();
    const double want = torch::nn::utils::clip_grad_norm_(ref->parameters(), max_norm);
    const double got = flat.clip_grad_norm(max_norm);
    EXPECT_NEAR(got, want, 1e-6 * want) << max_norm;
    if (max_norm == 0.05) {
      ASSERT_GT(want, 0.1);  // this case does clip
    }
    auto rp = ref->named_parameters();
    for (auto& p : net->named_parameters()) expect_close(p.value().grad(), rp[p.key()].grad(), p.key());
  }
}

TEST(FlatParams, EmaEqualsPerTensorEma) {
  Net ref = make_net(), net = make_net();
  FlatParams flat(net->parameters());
  Ema per_tensor(*ref, 0.9, /*warmup=*/true), fused(*net, flat, 0.9, /*warmup=*/true);
  for (int64_t s = 0; s < 5; ++s) {
    torch::NoGradGuard ng;
    for (auto* m : {&ref, &net}) {
      torch::manual_seed(s);
      for (auto& p : (*m)->parameters()) p.add_(torch::randn(p.sizes()));
    }
    per_tensor.update(*ref);
    fused.update(*net);
  }
  EXPECT_EQ(fused.updates(), 5);
  for (const auto& kv : per_tensor.shadow()) expect_close(fused.shadow().at(kv.first), kv.second, kv.first);
  EXPECT_FALSE(torch::allclose(fused.shadow().at("fc1.weight"), net->fc1->weight));  // an average, not a copy
}

template <typename T>
void round_trip(const T& from, T& to) {
  std::stringstream buf;
  torch::serialize::OutputArchive out;
  from.save(out);
  out.save_to(buf);
  torch::serialize::InputArchive in;
  in.load_from(buf);
  to.load(in);
}

TEST(FusedAdamW, CheckpointRoundTripContinuesBitForBit) {
  Net a = make_net(), b = make_net();
  FlatParams fa(a->parameters()), fb(b->parameters());
  FusedAdamW oa(fa, hyper()), ob(fb, hyper());
  for (int64_t s = 0; s < 3; ++s) {
    fa.zero_grad();
    loss_of(a, s).backward();
    oa.step();
  }
  {
    torch::NoGradGuard ng;
    fb.groups()[0].data.copy_(fa.groups()[0].data);
  }
  round_trip(oa, ob);
  EXPECT_EQ(ob.steps(), 3);
  EXPECT_TRUE(torch::equal(ob.exp_avg()[0], oa.exp_avg()[0]));
  EXPECT_TRUE(torch::equal(ob.exp_avg_sq()[0], oa.exp_avg_sq()[0]));
  fa.zero_grad(), fb.zero_grad();
  loss_of(a, 3).backward();
  loss_of(b, 3).backward();
  oa.step(), ob.step();
  EXPECT_TRUE(torch::equal(fa.groups()[0].data, fb.groups()[0].data));
}

TEST(FusedAdamW, LoadsTorchAdamWState) {
  Net ref = make_net(), net = make_net();
  torch::optim::AdamW torch_opt(ref->parameters(), torch::optim::AdamWOptions(1e-2));
  for (int64_t s = 0; s < 3; ++s) {
    torch_opt.zero_grad();
    loss_of(ref, s).backward();
    torch_opt.step();
  }
  FlatParams flat(net->parameters());
  FusedAdamW opt(flat, hyper());
  std::stringstream buf;
  torch::serialize::OutputArchive out;
  torch_opt.save(out);
  out.save_to(buf);
  torch::serialize::InputArchive in;
  in.load_from(buf);
  opt.load(in);
  EXPECT_EQ(opt.steps(), 3);
  const auto& g = flat.groups()[0];
  auto params = ref->parameters();
  for (size_t k = 0; k < g.index.size(); ++k) {
    const auto& p = params[g.index[k]];
    auto& st = static_cast<torch::optim::AdamWParamState&>(
        *torch_opt.state().at(torch_optim_state_key(p)));
    EXPECT_TRUE(torch::equal(opt.exp_avg_sq()[0].narrow(0, g.offset[k], p.numel()).view(p.sizes()), st.exp_avg_sq()));
  }
}

}  // namespace
}  // namespace gsdiff
