// Tests for the single-node ResBlock/AttnBlock autograd (models/unet_autograd.h) against the op-by-op graph.
#include "models/unet_autograd.h"

#include "models/cpu_kernels.h"

#include <torch/version.h>

#include <map>
#include <string>

#include "model_test_util.h"
#include "models/unet_blocks.h"
#include "test_util.h"

namespace gsdiff {
namespace {
using testing::Bf16Autocast;
using testing::max_abs_diff;
using testing::perturb_zero_params;

// Restore the process-wide switches whatever a test does.
struct BlockAutogradSwitch {
  explicit BlockAutogradSwitch(bool on) : before(block_autograd_enabled()) { set_block_autograd(on); }
  ~BlockAutogradSwitch() { set_block_autograd(before); }
  bool before;
};
struct CpuKernelsSwitch {
  explicit CpuKernelsSwitch(bool on) : before(cpu_kernels_enabled()) { set_cpu_kernels(on); }
  ~CpuKernelsSwitch() { set_cpu_kernels(before); }
  bool before;
};

// One forward + backward of `f` on fresh leaves, with the switch `on` and the global generator at `seed`:
// the output, the inputs' gradients and every parameter's gradient by name.
struct Run {
  torch::Tensor out;
  std::vector<torch::Tensor> input_grads;
  std::map<std::string, torch::Tensor> param_grads;
};
template <class F>
Run run(torch::nn::Module& m, bool on, const std::vector<torch::Tensor>& inputs, const torch::Tensor& g, F f) {
  BlockAutogradSwitch sw(on);
  m.zero_grad();
  std::vector<torch::Tensor> leaves;
  for (auto& t : inputs) leaves.push_back(t.detach().clone().requires_grad_(true));
  torch::manual_seed(11);  // the same dropout masks in both runs
  Run r;
  r.out = f(leaves);
  (r.out * g).sum().backward();
  for (auto& l : leaves) r.input_grads.push_back(l.grad());
  for (auto& p : m.named_parameters())  // (forward_temb_proj leaves temb_proj unused: no gradient)
    if (p.value().grad().defined()) r.param_grads[p.key()] = p.value().grad().clone();
  return r;
}

std::string node_name(const torch::Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : "(leaf)"; }

// The single-node run and the op-by-op run of ResBlock(in_ch -> 16) with dropout p, in train mode.
std::pair<Run, Run> resblock_runs(int64_t in_ch, double p) {
  torch::manual_seed(5);
  ResBlock b(in_ch, 16, 32, p, 4);
  perturb_zero_params(*b);
  b->train();
  auto x = torch::randn({3, in_ch, 8, 8}), proj = torch::randn({3, 16}), g = torch::randn({3, 16, 8, 8});
  auto f = [&](std::vector<torch::Tensor>& in) { return b->forward_temb_proj(in[0], in[1]); };
  auto fused = run(*b, true, {x, proj}, g, f);
  auto ref = run(*b, false, {x, proj}, g, f);
  EXPECT_NE(node_name(fused.out).find("ResBlockNode"), std::string::npos) << node_name(fused.out);
  EXPECT_EQ(node_name(ref.out).find("ResBlockNode"), std::string::npos) << node_name(ref.out);
  return {fused, ref};
}

// The same for the tiny U-Net (attention at 4x4 with 2 heads) with `dropout`.
std::pair<Run, Run> unet_runs(double dropout) {
  torch::manual_seed(1);
  UNet net(testing::tiny_unet().dropout(dropout));
  perturb_zero_params(*net);
  net->train();
  auto x = torch::randn({3, 3, 8, 8}), t = torch::rand({3}), g = torch::randn({3, 3, 8, 8});
  auto f = [&](std::vector<torch::Tensor>& in) { return net(in[0], t); };
  auto fused = run(*net, true, {x}, g, f);
  return {fused, run(*net, false, {x}, g, f)};
}

// Every gradient of `a` equals `r`'s: bit for bit (rel = 0) or within rel * (1 + max |r|).
void expect_same_gradients(const Run& a, const Run& r, double rel, const std::string& what) {
  auto ok = [&](const torch::Tensor& x, const torch::Tensor& y) {
    return rel == 0 ? torch::equal(x, y) : max_abs_diff(x, y) <= rel * (1 + y.abs().max().item<double>());
  };
  ASSERT_EQ(a.input_grads.size(), r.input_grads.size());
  for (size_t i = 0; i < r.input_grads.size(); ++i)
    EXPECT_TRUE(ok(a.input_grads[i], r.input_grads[i]))
        << what << " input " << i << ": " << max_abs_diff(a.input_grads[i], r.input_grads[i]);
  EXPECT_EQ(a.param_grads.size(), r.param_grads.size()) << what;
  for (auto& [name, gr] : r.param_grads)
    EXPECT_TRUE(a.param_grads.count(name) && ok(a.param_grads.at(name), gr))
        << what << " " << name << ": " << max_abs_diff(a.param_grads.at(name), gr);
}

class ResBlockSingleNode : public ::testing::TestWithParam<int64_t> {};

// Same convolution kernels; on the fused silu(GroupNorm) kernel (AVX2 CPUs) the normalisations agree up to
// float rounding (else bit for bit, next test). Dropout > 0 on the CPU kernel draws other masks than the
// op-by-op graph's bernoulli_: see the tests below.
TEST_P(ResBlockSingleNode, ResBlockEqualsTheOpByOpGraph) {
  auto [fused, ref] = resblock_runs(GetParam(), 0.0);
  EXPECT_LT(max_abs_diff(fused.out, ref.out), 1e-5 * (1 + ref.out.abs().max().item<double>()));
  expect_same_gradients(fused, ref, 1e-5, "in_ch " + std::to_string(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Shortcut, ResBlockSingleNode, ::testing::Values<int64_t>(8, 16));

// With models/cpu_kernels.h switched off, the ResBlock node runs exactly the op-by-op graph's kernels
// (dropout's bernoulli_ included, from the same generator state): values and every gradient bit for bit, with
// and without the shortcut and dropout. The whole U-Net with dropout: the same output bit for bit, gradients
// within float rounding (the attention node's bmm operands have other strides than autograd's).
TEST(BlockAutograd, WithAtenKernelsTheNodesAreBitIdentical) {
  CpuKernelsSwitch kernels(false);
  for (int64_t in_ch : {8, 16})
    for (double p : {0.0, 0.3}) {
      auto [fused, ref] = resblock_runs(in_ch, p);
      const std::string what = "in_ch " + std::to_string(in_ch) + " p " + std::to_string(p);
      EXPECT_TRUE(torch::equal(fused.out, ref.out)) << what;
      expect_same_gradients(fused, ref, 0.0, what);
    }
  auto [fused, ref] = unet_runs(0.2);
  EXPECT_TRUE(torch::equal(fused.out, ref.out));
  expect_same_gradients(fused, ref, 1e-5, "unet");
}

// With dropout, the node's forward is a deterministic function of its inputs once the generator is seeded;
// its gradients (x, proj, weights) must be that function's derivatives: central differences along random
// unit directions, in float32 (step 1e-2, agreement 2e-3 relative).
TEST(BlockAutograd, ResBlockWithDropoutGradientsMatchFiniteDifferences) {
  torch::manual_seed(8);
  ResBlock b(8, 16, 32, 0.3, 4);
  perturb_zero_params(*b);
  b->train();
  BlockAutogradSwitch sw(true);
  auto x0 = torch::randn({3, 8, 8, 8}), p0 = torch::randn({3, 16}), g = torch::randn({3, 16, 8, 8});
  // Grad mode stays on for every evaluation: the node path (without grad the blocks run op by op, and
  // their dropout draws ATen's masks instead).
  auto F = [&](const torch::Tensor& x, const torch::Tensor& proj) {
    torch::manual_seed(21);  // the same masks on every call
    return b->forward_temb_proj(x, proj).detach();
  };
  auto x = x0.clone().requires_grad_(true), proj = p0.clone().requires_grad_(true);
  torch::manual_seed(21);
  auto out = b->forward_temb_proj(x, proj);
  EXPECT_NE(node_name(out).find("ResBlockNode"), std::string::npos);
  (out * g).sum().backward();
  {  // the masks drop units: train output differs from eval's, and repeats exactly
    EXPECT_TRUE(torch::equal(F(x0, p0), out.detach()));
    b->eval();
    EXPECT_GT(max_abs_diff(F(x0, p0), out.detach()), 1e-3);
    b->train();
    torch::manual_seed(22);
    EXPECT_GT(max_abs_diff(b->forward_temb_proj(x0, p0).detach(), out.detach()), 1e-3);  // another seed, other masks
  }
  const double eps = 1e-2;
  auto check = [&](const char* what, const torch::Tensor& analytic, auto&& perturbed) {
    auto v = torch::randn_like(analytic);
    v /= v.norm();  // a unit direction: a step of 1e-2 stays where the function is near-linear
    const torch::Tensor up = perturbed(v * eps), down = perturbed(-v * eps);
    const double fd = ((up * g).sum().item<double>() - (down * g).sum().item<double>()) / (2 * eps);
    const double an = (analytic * v).sum().item<double>();
    EXPECT_NEAR(fd, an, 2e-3 * (1 + std::abs(an))) << what;
  };
  check("x", x.grad(), [&](const torch::Tensor& dv) { return F(x0 + dv, p0); });
  check("proj", proj.grad(), [&](const torch::Tensor& dv) { return F(x0, p0 + dv); });
  auto w0 = b->conv1->weight.detach().clone();
  auto set = [](torch::Tensor& w, const torch::Tensor& value) {
    torch::NoGradGuard ng;
    w.copy_(value);
  };
  check("conv1.weight", b->conv1->weight.grad(), [&](const torch::Tensor& dv) {
    set(b->conv1->weight, w0 + dv);
    auto o = F(x0, p0);
    set(b->conv1->weight, w0);
    return o;
  });
  auto n1w0 = b->norm1->weight.detach().clone();
  check("norm1.weight", b->norm1->weight.grad(), [&](const torch::Tensor& dv) {
    set(b->norm1->weight, n1w0 + dv);
    auto o = F(x0, p0);
    set(b->norm1->weight, n1w0);
    return o;
  });
}

// From 4M multiply-adds up, the 1x1 shortcut and attention projections run on oneDNN (THNN op by op): the
// same sums in another order.
TEST(BlockAutograd, OneDnn1x1ConvolutionsEqualTheOpByOpGraph) {
  torch::manual_seed(4);
  ResBlock b(64, 128, 32, 0.0, 8);  // shortcut: 4 * 64 * 256 * 128 = 8.4M multiply-adds
  AttnBlock a(128, 1, 8);           // qkv: 4 * 128 * 256 * 384 = 50M
  perturb_zero_params(*b, 0.05);
  perturb_zero_params(*a, 0.05);
  torch::nn::Sequential both;
  both->push_back(b);
  both->push_back(a);
  auto x = torch::randn({4, 64, 16, 16}), proj = torch::randn({4, 128}), g = torch::randn({4, 128, 16, 16});
  auto f = [&](std::vector<torch::Tensor>& in) { return a(b->forward_temb_proj(in[0], in[1])); };
  auto fused = run(*both, true, {x, proj}, g, f);
  auto ref = run(*both, false, {x, proj}, g, f);
  EXPECT_LT(max_abs_diff(fused.out, ref.out), 1e-5 * (1 + ref.out.abs().max().item<double>()));
  expect_same_gradients(fused, ref, 1e-5, "1x1 on oneDNN");
}

TEST(BlockAutograd, AttnBlockEqualsTheOpByOpGraph) {
#if TORCH_VERSION_MAJOR >= 2
  GTEST_SKIP() << "LibTorch >= 2 runs AttnBlock through the fused attention kernel";
#endif
  for (int64_t heads : {1, 2}) {
    torch::manual_seed(3);
    AttnBlock a(16, heads, 4);
    perturb_zero_params(*a, 0.3);
    auto x = torch::randn({3, 16, 4, 4}), g = torch::randn({3, 16, 4, 4});
    auto f = [&](std::vector<torch::Tensor>& in) { return a(in[0]); };
    auto fused = run(*a, true, {x}, g, f);
    auto ref = run(*a, false, {x}, g, f);
    EXPECT_NE(node_name(fused.out).find("AttnBlockNode"), std::string::npos) << node_name(fused.out);
    // The same kernels; the gradient of the scores is formed as autograd's BmmBackward0 forms it, so the
    // results agree to the last bits (summation order inside bmm may differ with the operands' strides).
    EXPECT_LT(max_abs_diff(fused.out, ref.out), 1e-6) << heads;
    expect_same_gradients(fused, ref, 1e-5, "heads " + std::to_string(heads));
  }
}

TEST(BlockAutograd, WholeUNetGradientsEqualTheOpByOpGraph) {
  auto [fused, ref] = unet_runs(0.0);  // (dropout masks: see the finite-difference test)
  EXPECT_LT(max_abs_diff(fused.out, ref.out), 1e-6);
  expect_same_gradients(fused, ref, 1e-5, "unet");
}

TEST(BlockAutograd, FrozenParametersAndInputGetNoGradient) {
  torch::manual_seed(2);
  ResBlock b(8, 16, 32, 0.0, 4);
  perturb_zero_params(*b);
  b->norm1->weight.set_requires_grad(false);
  b->conv2->bias.set_requires_grad(false);
  auto x = torch::randn({2, 8, 4, 4});  // no gradient asked for x
  auto proj = torch::randn({2, 16}).requires_grad_(true);
  BlockAutogradSwitch sw(true);
  auto out = b->forward_temb_proj(x, proj);
  EXPECT_NE(node_name(out).find("ResBlockNode"), std::string::npos);
  out.pow(2).sum().backward();
  EXPECT_FALSE(b->norm1->weight.grad().defined());
  EXPECT_FALSE(b->conv2->bias.grad().defined());
  EXPECT_TRUE(b->norm1->bias.grad().defined());
  EXPECT_TRUE(proj.grad().defined());
  // Against the op-by-op graph on the same frozen set.
  auto gp = proj.grad().clone(), gw = b->conv1->weight.grad().clone();
  proj.mutable_grad() = torch::Tensor();
  b->zero_grad();
  set_block_autograd(false);
  b->forward_temb_proj(x, proj).pow(2).sum().backward();
  EXPECT_LT(max_abs_diff(gp, proj.grad()), 1e-5 * (1 + gp.abs().max().item<double>()));
  EXPECT_LT(max_abs_diff(gw, b->conv1->weight.grad()), 1e-5 * (1 + gw.abs().max().item<double>()));
}

TEST(BlockAutograd, DoubleBackwardIsRefusedWithTheWayOut) {
  ResBlock b(8, 16, 32, 0.0, 4);
  perturb_zero_params(*b);
  auto x = torch::randn({2, 8, 4, 4}).requires_grad_(true), proj = torch::randn({2, 16});
  BlockAutogradSwitch sw(true);
  auto out = b->forward_temb_proj(x, proj).pow(2).sum();
  try {
    torch::autograd::grad({out}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true);
    FAIL() << "create_graph went through";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("set_block_autograd(false)"), std::string::npos) << e.what();
  }
  // First-order gradients of the same graph still work, and op by op double backward does.
  EXPECT_TRUE(torch::autograd::grad({out}, {x})[0].defined());
  set_block_autograd(false);
  auto out2 = b->forward_temb_proj(x, proj).pow(2).sum();
  auto gx = torch::autograd::grad({out2}, {x}, {}, true, true)[0];
  EXPECT_TRUE(gx.requires_grad());
}

TEST(BlockAutograd, OpByOpWhereTheSingleNodeDoesNotApply) {
  ResBlock b(8, 16, 32, 0.0, 4);
  auto x = torch::randn({2, 8, 4, 4}), proj = torch::randn({2, 16});
  BlockAutogradSwitch sw(true);
  {
    torch::NoGradGuard ng;  // sampling: no graph at all
    EXPECT_FALSE(b->forward_temb_proj(x, proj).grad_fn());
  }
  {
    Bf16Autocast amp(false);  // autocast decides each op's dtype: op by op
    auto out = b->forward_temb_proj(x, proj);
    EXPECT_EQ(node_name(out).find("ResBlockNode"), std::string::npos) << node_name(out);
  }
  set_block_autograd(false);
  EXPECT_EQ(node_name(b->forward_temb_proj(x, proj)).find("ResBlockNode"), std::string::npos);
  set_block_autograd(true);
  EXPECT_NE(node_name(b->forward_temb_proj(x, proj)).find("ResBlockNode"), std::string::npos);
}

}  // namespace
}  // namespace gsdiff
