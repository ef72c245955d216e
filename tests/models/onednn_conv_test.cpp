// Tests for the cached oneDNN convolutions (models/onednn_conv.h) against float64 convolutions and ATen's.
#include "models/onednn_conv.h"

#include <fstream>
#include <set>
#include <string>

#include "model_test_util.h"
#include "models/cpu_kernels.h"
#include "models/unet.h"
#include "models/unet_autograd.h"
#include "test_util.h"

namespace gsdiff {
namespace {
using torch::Tensor;

// Sets the switch for a scope and restores its default (on) after.
struct CachedConvSwitch {
  explicit CachedConvSwitch(bool on) { set_cached_conv(on); }
  ~CachedConvSwitch() { set_cached_conv(true); }
};

struct Shape {
  int64_t B, C, H, W, O, k, stride, pad, dilation;
  bool bias;
};
// The U-Net's shapes (3x3 pad 1, the 1-channel input conv, stride-2 downsampling on an odd size, 1x1) and
// others the cached path must get right too (no bias, dilation 2, k = 5, batch 1).
const std::vector<Shape> kShapes = {{8, 32, 8, 8, 32, 3, 1, 1, 1, true}, {8, 1, 8, 8, 16, 3, 1, 1, 1, true},
                                    {3, 16, 9, 7, 8, 3, 2, 1, 1, true},  {8, 64, 4, 4, 32, 1, 1, 0, 1, true},
                                    {2, 5, 6, 6, 7, 3, 1, 2, 2, false},  {1, 3, 5, 5, 4, 5, 1, 2, 1, true}};

std::string name(const Shape& s) {
  return "B" + std::to_string(s.B) + " C" + std::to_string(s.C) + " " + std::to_string(s.H) + "x" +
         std::to_string(s.W) + " O" + std::to_string(s.O) + " k" + std::to_string(s.k) + " s" +
         std::to_string(s.stride) + " p" + std::to_string(s.pad) + " d" + std::to_string(s.dilation) +
         (s.bias ? " bias" : "");
}

// Rounding bound of a float32 sum of n products (Higham, Accuracy and Stability, Thm 3.1 / (3.5)):
// |fl(sum a_i b_i) - sum a_i b_i| <= gamma_n sum |a_i b_i|, gamma_n = n u / (1 - n u), u = 2^-24; the
// sums of |a_i b_i| are the same convolutions of |a| and |b|, in float64. Factor 2: the bias add and a
// blocked kernel's partial sums add at most one more rounding per term.
double gamma(int64_t n) {
  const double u = std::ldexp(1.0, -24);
  return 2.0 * n * u / (1.0 - 2.0 * n * u);
}

void expect_within(const Tensor& got, const Tensor& ref, const Tensor& bound, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_EQ(got.sizes(), ref.sizes()) << what;
  ASSERT_EQ(got.scalar_type(), at::kFloat) << what;
  auto excess = ((got.to(at::kDouble) - ref).abs() - bound).max().item<double>();
  EXPECT_LE(excess, 0.0) << what << ": max |got - float64| exceeds the rounding bound by " << excess;
  // The bound is not vacuous: it is far below the values' own size.
  EXPECT_LT(bound.max().item<double>(), 1e-3 * ref.abs().max().item<double>() + 1e-30) << what;
}

struct Case {
  Tensor x, w, b, g;  // float32: input, weight, bias (or undefined), dL/dy
};
Case make_case(const Shape& s, uint64_t seed) {
  auto gen = testing::seeded(seed);
  Case c;
  c.x = torch::randn({s.B, s.C, s.H, s.W}, gen);
  c.w = torch::randn({s.O, s.C, s.k, s.k}, gen) * 0.2;
  if (s.bias) c.b = torch::randn({s.O}, gen);
  const int64_t Ho = (s.H + 2 * s.pad - s.dilation * (s.k - 1) - 1) / s.stride + 1;
  const int64_t Wo = (s.W + 2 * s.pad - s.dilation * (s.k - 1) - 1) / s.stride + 1;
  // dL/dy as a strided view (every other column of a wider tensor): the backward must not assume contiguity.
  c.g = torch::randn({s.B, s.O, Ho, 2 * Wo}, gen).slice(3, 0, 2 * Wo, 2);
  return c;
}

Tensor d(const Tensor& t) { return t.defined() ? t.to(at::kDouble) : t; }

TEST(CachedConv, ForwardMatchesFloat64WithinTheRoundingBound) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  CachedConvSwitch on(true);
  ASSERT_TRUE(cached_conv_enabled());
  for (const auto& s : kShapes) {
    auto c = make_case(s, 3);
    const auto before = cached_conv_counts();
    auto y = conv2d_forward(c.x, c.w, c.b, s.stride, s.pad, s.dilation);
    EXPECT_EQ(cached_conv_counts()[0], before[0] + 1) << "the cached forward did not run: " << name(s);
    const std::vector<int64_t> st{s.stride, s.stride}, pd{s.pad, s.pad}, dl{s.dilation, s.dilation};
    auto ref = at::conv2d(d(c.x), d(c.w), d(c.b), st, pd, dl);
    auto absum = at::conv2d(d(c.x).abs(), d(c.w).abs(), c.b.defined() ? d(c.b).abs() : Tensor(), st, pd, dl);
    expect_within(y, ref, gamma(s.C * s.k * s.k + 1) * absum, "forward " + name(s));
  }
}

TEST(CachedConv, BackwardMatchesFloat64WithinTheRoundingBound) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  CachedConvSwitch on(true);
  for (const auto& s : kShapes) {
    auto c = make_case(s, 4);
    const auto before = cached_conv_counts();
    auto [gx, gw, gb] = conv2d_backward(c.g, c.x, c.w, s.stride, s.pad, s.dilation, {true, true, s.bias});
    const auto after = cached_conv_counts();
    EXPECT_EQ(after[1], before[1] + 1) << "the cached backward-data did not run: " << name(s);
    // oneDNN 2.6 has only a GEMM kernel for the dilated 5-channel weights' gradient: ATen takes that one.
    EXPECT_EQ(after[2], before[2] + (s.dilation == 1 ? 1 : 0)) << "backward-weights: " << name(s);
    const std::vector<int64_t> st{s.stride, s.stride}, pd{s.pad, s.pad}, dl{s.dilation, s.dilation};
    const std::vector<int64_t> bias_sizes{s.O};
    auto ref = at::convolution_backward(d(c.g), d(c.x), d(c.w), bias_sizes, st, pd, dl, false, {0, 0}, 1,
                                        {true, true, s.bias});
    auto bnd = at::convolution_backward(d(c.g).abs(), d(c.x).abs(), d(c.w).abs(), bias_sizes, st, pd, dl, false,
                                        {0, 0}, 1, {true, true, s.bias});
    const int64_t positions = s.B * c.g.size(2) * c.g.size(3);
    expect_within(gx, std::get<0>(ref), gamma(s.O * s.k * s.k) * std::get<0>(bnd), "dL/dx " + name(s));
    expect_within(gw, std::get<1>(ref), gamma(positions) * std::get<1>(bnd), "dL/dw " + name(s));
    if (s.bias) expect_within(gb, std::get<2>(ref), gamma(positions) * std::get<2>(bnd), "dL/db " + name(s));
    else EXPECT_FALSE(gb.defined()) << name(s);
  }
}

TEST(CachedConv, BackwardReturnsOnlyWhatTheMaskAsks) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  CachedConvSwitch on(true);
  const Shape s = kShapes[0];
  auto c = make_case(s, 5);
  auto [gx, gw, gb] = conv2d_backward(c.g, c.x, c.w, 1, 1, 1, {false, true, false});
  EXPECT_FALSE(gx.defined());
  EXPECT_FALSE(gb.defined());
  auto [gx2, gw2, gb2] = conv2d_backward(c.g, c.x, c.w, 1, 1, 1, {true, false, true});
  EXPECT_FALSE(gw2.defined());
  ASSERT_TRUE(gx2.defined() && gb2.defined());
  // dL/db alone is the sum of dL/dy over batch and positions (exactly what the bias does).
  auto ref_b = d(c.g).sum(at::IntArrayRef{0, 2, 3});
  EXPECT_LE((d(gb2) - ref_b).abs().max().item<double>(),
            (gamma(s.B * 64) * d(c.g).abs().sum(at::IntArrayRef{0, 2, 3})).max().item<double>());
  // Asking for dL/dw with or without the others gives the same dL/dw (one plan, one kernel).
  auto [gx3, gw3, gb3] = conv2d_backward(c.g, c.x, c.w, 1, 1, 1, {true, true, true});
  EXPECT_TRUE(torch::equal(gw, gw3));
}

TEST(CachedConv, AutogradNodeGivesTheFloat64Gradients) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  CachedConvSwitch on(true);
  const Shape s = kShapes[2];  // stride 2 on an odd size
  auto c = make_case(s, 6);
  auto x = c.x.clone().requires_grad_(true), w = c.w.clone().requires_grad_(true), b = c.b.clone().requires_grad_(true);
  auto y = conv2d(x, w, b, s.stride, s.pad, s.dilation);
  ASSERT_TRUE(y.grad_fn());
  EXPECT_EQ(y.grad_fn()->name().find("Convolution"), std::string::npos) << "expected gsdiff's node, got ATen's";
  (y * c.g).sum().backward();
  auto xd = d(c.x).requires_grad_(true), wd = d(c.w).requires_grad_(true), bd = d(c.b).requires_grad_(true);
  (at::conv2d(xd, wd, bd, {2, 2}, {1, 1}) * d(c.g)).sum().backward();
  auto [gx, gw, gb] = conv2d_backward(c.g, c.x, c.w, s.stride, s.pad, 1, {true, true, true});
  EXPECT_TRUE(torch::equal(x.grad(), gx) && torch::equal(w.grad(), gw) && torch::equal(b.grad(), gb));
  EXPECT_LT((x.grad().to(at::kDouble) - xd.grad()).abs().max().item<double>(), 1e-4);
  EXPECT_LT((w.grad().to(at::kDouble) - wd.grad()).abs().max().item<double>(), 1e-4);
}

TEST(CachedConv, DoubleBackwardIsRefusedWithTheWayOut) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  CachedConvSwitch on(true);
  auto c = make_case(kShapes[0], 7);
  auto x = c.x.clone().requires_grad_(true);
  auto y = conv2d(x, c.w, c.b, 1, 1, 1);
  try {
    torch::autograd::grad({(y * y).sum()}, {x}, {}, true, true);
    FAIL() << "a double backward through the cached node must be refused";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("set_block_autograd(false)"), std::string::npos) << e.what();
  }
  // The way out the message names: with the single-node blocks off, the convolution is ATen's, twice differentiable.
  set_block_autograd(false);
  auto y2 = conv2d(x, c.w, c.b, 1, 1, 1);
  auto gx = torch::autograd::grad({(y2 * y2).sum()}, {x}, {}, true, true)[0];
  set_block_autograd(true);
  EXPECT_TRUE(gx.requires_grad());
}

TEST(CachedConv, StepsAsideUnderAutocastAndForOtherDtypes) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  CachedConvSwitch on(true);
  auto c = make_case(kShapes[0], 8);
  {
    testing::Bf16Autocast ac(false);
    EXPECT_EQ(conv2d(c.x, c.w, c.b, 1, 1, 1).scalar_type(), at::kBFloat16);  // autocast ran it, in bf16
  }
  auto yd = conv2d(d(c.x), d(c.w), d(c.b), 1, 1, 1);
  EXPECT_EQ(yd.scalar_type(), at::kDouble);
  EXPECT_LT((yd - at::conv2d(d(c.x), d(c.w), d(c.b), {1, 1}, {1, 1})).abs().max().item<double>(), 1e-12);
}

TEST(CachedConv, ManyShapesOverflowTheCacheAndStayRight) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  CachedConvSwitch on(true);
  auto w = torch::randn({4, 2, 3, 3}, testing::seeded(9));
  auto check = [&](const Tensor& x, const std::string& what) {
    auto ref = at::conv2d(d(x), d(w), Tensor(), {1, 1}, {1, 1});
    auto bound = gamma(2 * 9) * at::conv2d(d(x).abs(), d(w).abs(), Tensor(), {1, 1}, {1, 1});
    expect_within(conv2d_forward(x, w, Tensor(), 1, 1, 1), ref, bound, what);
  };
  auto first = torch::randn({1, 2, 5, 5}, testing::seeded(10));
  check(first, "B 1");
  for (int64_t B = 2; B <= 300; ++B) {  // more shapes than the cache keeps (256): it starts afresh once
    auto x = torch::randn({B, 2, 5, 5}, testing::seeded(10 + B));
    if (B % 50 == 1) check(x, "B " + std::to_string(B));
    else conv2d_forward(x, w, Tensor(), 1, 1, 1);
  }
  check(first, "B 1 again, after the cache was cleared");
}

// oneDNN's OpenMP calls must land in LibTorch's OpenMP runtime: two runtimes would each start a thread pool
// and oversubscribe the cores.
TEST(CachedConv, OneOpenMpRuntimeIsLoaded) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  std::ifstream maps("/proc/self/maps");
  if (!maps) GTEST_SKIP() << "no /proc/self/maps";
  std::set<std::string> gomp;
  for (std::string line; std::getline(maps, line);) {
    auto pos = line.find('/');
    if (pos != std::string::npos && line.find("libgomp", pos) != std::string::npos) gomp.insert(line.substr(pos));
  }
  EXPECT_LE(gomp.size(), 1u) << "OpenMP runtimes loaded: " << gomp.size();
}

// One train step's output and parameter gradients (loss sum y^2), as fresh tensors.
std::vector<Tensor> output_and_grads(UNet& net, const Tensor& x, const Tensor& t) {
  net->zero_grad();
  auto y = net->forward(x, t);
  y.pow(2).sum().backward();
  std::vector<Tensor> out{y.detach().clone()};
  for (auto& p : net->parameters()) out.push_back(p.grad().clone());
  return out;
}

// The U-Net users train: cached convolutions on and off give the same outputs and gradients up to float32
// rounding through its ~20 layers (relative 1e-4 of the largest value: each layer's sums round at ~1e-6).
TEST(CachedConv, UNetTrainStepMatchesAtenConvolutions) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  torch::manual_seed(12);
  UNet net(testing::tiny_unet().dropout(0.0));
  testing::perturb_zero_params(*net);
  auto x = torch::randn({4, 3, 8, 8}, testing::seeded(13));
  auto t = torch::rand({4}, testing::seeded(14));
  auto run = [&](bool on) {
    CachedConvSwitch sw(on);
    return output_and_grads(net, x, t);
  };
  const auto before = cached_conv_counts();
  auto cached = run(true);
  const auto after = cached_conv_counts();
  auto aten = run(false);
  EXPECT_EQ(cached_conv_counts(), after) << "switched off, nothing may run on the cached path";
  // Every convolution of the net ran cached: 33 of them (input and output convs, 7 ResBlocks' two 3x3 and five
  // 1x1 shortcuts, 4 attention blocks' qkv and projection, down- and upsampling), and each one's two
  // gradients, but the input conv's dL/dx (x needs none).
  EXPECT_EQ(after[0] - before[0], 33);
  EXPECT_EQ(after[1] - before[1], 32);
  EXPECT_EQ(after[2] - before[2], 33);
  ASSERT_EQ(cached.size(), aten.size());
  for (size_t i = 0; i < cached.size(); ++i) {
    const double scale = aten[i].abs().max().item<double>();
    EXPECT_LE(testing::max_abs_diff(cached[i], aten[i]), 1e-4 * scale + 1e-7) << "tensor " << i;
  }
  // Sampling (no grad) takes the cached path too and gives the same values.
  torch::NoGradGuard ng;
  CachedConvSwitch on(true);
  auto y1 = net->forward(x, t);
  set_cached_conv(false);
  auto y0 = net->forward(x, t);
  EXPECT_LE(testing::max_abs_diff(y1, y0), 1e-4 * y0.abs().max().item<double>());
}


// oneDNN 2.6's Winograd kernels need AVX-512 (its avx512_core: F, BW, VL, DQ). Where they exist, a convolution
// that did not run on one is a failure, not a skip.
bool has_winograd_kernels() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

// Sets the algorithm for a scope and restores the default (direct) after.
struct AlgorithmSwitch {
  explicit AlgorithmSwitch(ConvAlgorithm a) { set_conv_algorithm(a); }
  ~AlgorithmSwitch() { set_conv_algorithm(ConvAlgorithm::direct); }
};

// Winograd F(4x4, 3x3) is exact in exact arithmetic; in float32 its transforms round more than direct summation
// (measured: up to 12x direct's largest error). The test holds it to direct summation's own worst-case bound
// gamma_n sum |a b| above, which is not a theorem for Winograd: it is the accuracy gsdiff promises for the flag.
// On these shapes Winograd's largest error used 0.1-3.5% of it.
TEST(CachedConv, WinogradStaysWithinTheDirectRoundingBound) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  CachedConvSwitch on(true);
  // Sizes where the bound is tight enough to mean something (below 1e-3 of the values: C <= 64, at most 512
  // positions), with edges that cut the 4x4 output tiles (12x12, 10x6).
  const std::vector<Shape> shapes = {{8, 32, 8, 8, 32, 3, 1, 1, 1, true},    {2, 16, 12, 12, 32, 3, 1, 1, 1, true},
                                     {2, 64, 16, 16, 64, 3, 1, 1, 1, false}, {1, 32, 16, 24, 48, 3, 1, 1, 1, true},
                                     {2, 32, 10, 6, 16, 3, 1, 1, 1, true}};
  for (const auto& s : shapes) {
    auto c = make_case(s, 15);
    const std::vector<int64_t> st{1, 1}, pd{1, 1}, dl{1, 1}, bias_sizes{s.O};
    auto direct = conv2d_forward(c.x, c.w, c.b, 1, 1, 1);
    AlgorithmSwitch wino(ConvAlgorithm::winograd);
    const auto before = winograd_conv_counts();
    auto y = conv2d_forward(c.x, c.w, c.b, 1, 1, 1);
    auto [gx, gw, gb] = conv2d_backward(c.g, c.x, c.w, 1, 1, 1, {true, true, s.bias});
    const auto after = winograd_conv_counts();
    if (!has_winograd_kernels()) GTEST_SKIP() << "oneDNN 2.6 has no Winograd kernel for this CPU (no AVX-512)";
    EXPECT_EQ(after[0], before[0] + 1) << "the forward did not run Winograd: " << name(s);
    EXPECT_EQ(after[1], before[1] + 1) << "backward-data did not run Winograd: " << name(s);
    EXPECT_EQ(after[2], before[2] + 1) << "backward-weights did not run Winograd: " << name(s);
    EXPECT_FALSE(torch::equal(y, direct)) << "winograd gave direct's values bit for bit: " << name(s);
    auto ref = at::conv2d(d(c.x), d(c.w), d(c.b), st, pd, dl);
    auto absum = at::conv2d(d(c.x).abs(), d(c.w).abs(), c.b.defined() ? d(c.b).abs() : Tensor(), st, pd, dl);
    expect_within(y, ref, gamma(s.C * 9 + 1) * absum, "winograd forward " + name(s));
    auto r = at::convolution_backward(d(c.g), d(c.x), d(c.w), bias_sizes, st, pd, dl, false, {0, 0}, 1,
                                      {true, true, s.bias});
    auto bnd = at::convolution_backward(d(c.g).abs(), d(c.x).abs(), d(c.w).abs(), bias_sizes, st, pd, dl, false,
                                        {0, 0}, 1, {true, true, s.bias});
    const int64_t positions = s.B * c.g.size(2) * c.g.size(3);
    expect_within(gx, std::get<0>(r), gamma(s.O * 9) * std::get<0>(bnd), "winograd dL/dx " + name(s));
    expect_within(gw, std::get<1>(r), gamma(positions) * std::get<1>(bnd), "winograd dL/dw " + name(s));
    if (s.bias) expect_within(gb, std::get<2>(r), gamma(positions) * std::get<2>(bnd), "winograd dL/db " + name(s));
  }
}

// Shapes without a Winograd kernel (stride 2, 1x1, 5x5, dilation) run direct when winograd is asked, and the
// plans of one algorithm are not reused by the other.
TEST(CachedConv, WinogradFallsBackToDirectWhereItHasNoKernel) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  CachedConvSwitch on(true);
  for (size_t i = 2; i < kShapes.size(); ++i) {
    const auto& s = kShapes[i];
    auto c = make_case(s, 16);
    auto direct = conv2d_forward(c.x, c.w, c.b, s.stride, s.pad, s.dilation);
    AlgorithmSwitch wino(ConvAlgorithm::winograd);
    const auto before = winograd_conv_counts();
    const auto ran = cached_conv_counts();
    auto y = conv2d_forward(c.x, c.w, c.b, s.stride, s.pad, s.dilation);
    EXPECT_EQ(cached_conv_counts()[0], ran[0] + 1) << "the cached forward did not run: " << name(s);
    EXPECT_EQ(winograd_conv_counts()[0], before[0]) << "no Winograd kernel exists for " << name(s);
    EXPECT_TRUE(torch::equal(y, direct)) << "the fallback is the direct kernel: " << name(s);
  }
  EXPECT_THROW(conv_algorithm_named("fft"), std::invalid_argument);
  EXPECT_EQ(conv_algorithm_named("winograd"), ConvAlgorithm::winograd);
}

// A U-Net train step with Winograd convolutions against direct ones: the same outputs and gradients up to
// float32 rounding through its ~20 layers (relative 1e-4 of the largest value; Winograd's per-layer error
// measured above is 1-3.5e-6 relative). ch 32 so that the 3x3 convolutions have Winograd kernels (16-channel
// blocks).
TEST(CachedConv, WinogradUNetTrainStepMatchesDirect) {
  if (!cached_conv_built()) GTEST_SKIP() << "built without oneDNN (GSDIFF_ONEDNN)";
  torch::manual_seed(17);
  UNet net(testing::tiny_unet().ch(32).dropout(0.0));
  testing::perturb_zero_params(*net);
  auto x = torch::randn({4, 3, 8, 8}, testing::seeded(18));
  auto t = torch::rand({4}, testing::seeded(19));
  auto run = [&](ConvAlgorithm a) {
    AlgorithmSwitch sw(a);
    return output_and_grads(net, x, t);
  };
  if (!has_winograd_kernels()) GTEST_SKIP() << "oneDNN 2.6 has no Winograd kernel for this CPU (no AVX-512)";
  auto direct = run(ConvAlgorithm::direct);
  const auto before = winograd_conv_counts();
  auto wino = run(ConvAlgorithm::winograd);
  const auto after = winograd_conv_counts();
  EXPECT_GT(after[0], before[0]);
  EXPECT_GT(after[1], before[1]);
  EXPECT_GT(after[2], before[2]);
  ASSERT_EQ(direct.size(), wino.size());
  for (size_t i = 0; i < direct.size(); ++i) {
    const double scale = direct[i].abs().max().item<double>();
    EXPECT_LE(testing::max_abs_diff(wino[i], direct[i]), 1e-4 * scale + 1e-7) << "tensor " << i;
  }
}

}  // namespace
}  // namespace gsdiff
