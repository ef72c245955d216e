// Tests for the CPU kernels: silu(GroupNorm(x)) against ATen's ops and autograd; dropout's mask statistics.
#include "models/cpu_kernels.h"

#include <limits>

#include "model_test_util.h"
#include "test_util.h"

namespace gsdiff {
namespace {
using testing::max_abs_diff;

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return max_abs_diff(a, b) / (1e-12 + b.abs().max().item<double>());
}

class GroupNormSilu : public ::testing::TestWithParam<std::tuple<std::vector<int64_t>, int64_t, double>> {};

// Values, mean/rstd and all three gradients against the op-by-op reference, for positions per channel that
// fill the 8 lanes (8x8), leave a tail (7x7, 3x5), 1D and 3D shapes, groups of 1..C channels, and inputs
// large enough that sigmoid saturates (exp clamped).
TEST_P(GroupNormSilu, EqualsGroupNormThenSiluAndItsGradients) {
  const auto [shape, groups, scale] = GetParam();
  torch::manual_seed(7);
  auto x = (torch::randn(shape) * scale + 0.3).requires_grad_(true);
  const int64_t C = shape[1];
  auto gamma = (torch::rand({C}) + 0.5).requires_grad_(true), beta = torch::randn({C}).requires_grad_(true);
  ASSERT_TRUE(group_norm_silu_fusable(x, gamma));
  const int64_t N = shape[0], HW = x.numel() / (N * C);

  auto [n, mean_ref, rstd_ref] = at::native_group_norm(x, gamma, beta, N, C, HW, groups, 1e-6);
  auto ref = torch::silu(n);
  auto g = torch::randn_like(ref);
  (ref * g).sum().backward();

  auto [out, mean, rstd] = group_norm_silu_forward(x.detach(), gamma.detach(), beta.detach(), groups, 1e-6);
  EXPECT_LT(rel(out, ref), 2e-6);
  EXPECT_LT(rel(mean, mean_ref), 1e-5);
  EXPECT_LT(rel(rstd, rstd_ref), 1e-5);
  auto [dx, dgamma, dbeta] = group_norm_silu_backward(g, x.detach(), mean, rstd, gamma.detach(), beta.detach(), groups,
                                                      {true, true, true});
  EXPECT_LT(rel(dx, x.grad()), 2e-5);
  EXPECT_LT(rel(dgamma, gamma.grad()), 2e-5);
  EXPECT_LT(rel(dbeta, beta.grad()), 2e-5);
  // Only what the mask asks for.
  auto [dx2, dgamma2, dbeta2] =
      group_norm_silu_backward(g, x.detach(), mean, rstd, gamma.detach(), beta.detach(), groups, {false, true, false});
  EXPECT_FALSE(dx2.defined());
  EXPECT_FALSE(dbeta2.defined());
  EXPECT_TRUE(torch::equal(dgamma2, dgamma));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GroupNormSilu,
    ::testing::Values(std::make_tuple(std::vector<int64_t>{2, 8, 8, 8}, int64_t(4), 1.0),
                      std::make_tuple(std::vector<int64_t>{3, 12, 7, 7}, int64_t(3), 2.0),
                      std::make_tuple(std::vector<int64_t>{2, 6, 3, 5}, int64_t(6), 1.0),
                      std::make_tuple(std::vector<int64_t>{2, 16, 32, 32}, int64_t(1), 1.0),
                      std::make_tuple(std::vector<int64_t>{4, 8, 40}, int64_t(2), 1.0),
                      std::make_tuple(std::vector<int64_t>{2, 4, 2, 4, 4}, int64_t(2), 1.0),
                      std::make_tuple(std::vector<int64_t>{2, 8, 4, 4}, int64_t(8), 60.0)));

TEST(GroupNormSiluKernel, SaturatesAndPropagatesNaN) {
  // Each group is [-a, a] scaled so that y reaches +-100 after normalisation with gamma = 50:
  // silu(100) = 100, silu(-100) = -100 e^-100 ~ 0, no inf or NaN from the clamped exp.
  auto x = torch::tensor({-1.f, 1.f, -1.f, 1.f, -1.f, 1.f, -1.f, 1.f}).view({1, 1, 8});
  auto gamma = torch::full({1}, 100.f), beta = torch::zeros({1});
  auto [out, mean, rstd] = group_norm_silu_forward(x, gamma, beta, 1, 0.0);
  EXPECT_NEAR(out[0][0][1].item<double>(), 100.0, 1e-4);
  EXPECT_NEAR(out[0][0][0].item<double>(), 0.0, 1e-30);
  EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  // A NaN makes its group's statistics NaN, hence every output of that group, and no other group's.
  auto y = torch::randn({1, 4, 8});
  y[0][1][3] = std::numeric_limits<float>::quiet_NaN();
  auto [o2, m2, r2] = group_norm_silu_forward(y, torch::ones({4}), torch::zeros({4}), 2, 1e-6);
  EXPECT_TRUE(torch::isnan(o2.slice(1, 0, 2)).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(o2.slice(1, 2, 4)).all().item<bool>());
}

TEST(GroupNormSiluKernel, NotFusableOffTheFastPath) {
  auto gamma = torch::ones({8});
  EXPECT_FALSE(group_norm_silu_fusable(torch::randn({2, 8, 4, 4}, torch::kDouble), gamma));
  EXPECT_FALSE(group_norm_silu_fusable(torch::randn({2, 4, 4, 8}).permute({0, 3, 1, 2}), gamma));  // not contiguous
  EXPECT_FALSE(group_norm_silu_fusable(torch::randn({0, 8, 4, 4}), gamma));
  EXPECT_THROW(group_norm_silu_forward(torch::randn({2, 8, 4, 4}), gamma, torch::zeros({8}), 3, 1e-6),
               std::invalid_argument);
}

// Kept fraction 1 - p (5 sigma), kept values a / (1 - p) and dropped 0, neighbours independent
// (P(both kept) = (1 - p)^2), the same seed gives the same mask and another seed another one, the bits
// match the output, the backward scales by the same mask; 13 elements exercise the scalar tail.
TEST(DropoutKernel, MaskStatisticsValuesAndBackward) {
  const double p = 0.3;
  for (int64_t n : {int64_t(1) << 20, int64_t(13)}) {
    auto a = torch::rand({n}) + 0.5;  // nonzero everywhere
    auto [out, bits] = dropout_forward(a, p, 1234);
    ASSERT_EQ(bits.numel(), (n + 7) / 8);
    auto kept = out != 0;
    auto expected_bits = torch::zeros({(n + 7) / 8}, torch::kLong);
    for (int64_t j = 0; j < 8; ++j) {
      auto k = torch::cat({kept.to(torch::kLong), torch::zeros({(8 - n % 8) % 8}, torch::kLong)}).view({-1, 8});
      expected_bits += k.select(1, j) * (int64_t(1) << j);
    }
    EXPECT_TRUE(torch::equal(bits.to(torch::kLong), expected_bits)) << n;
    const float scale = float(1.0 / (1.0 - p));
    EXPECT_TRUE(torch::equal(out.masked_select(kept), a.masked_select(kept) * scale)) << n;
    auto g = torch::randn({n});
    auto ga = dropout_backward(g, bits, p);
    EXPECT_TRUE(torch::equal(ga, torch::where(kept, g * scale, torch::zeros_like(g)))) << n;
    auto [out2, bits2] = dropout_forward(a, p, 1234);
    EXPECT_TRUE(torch::equal(bits, bits2));
    if (n < 1000) continue;
    const double N = double(n), q = 1 - p;
    const double frac = kept.to(torch::kDouble).mean().item<double>();
    EXPECT_NEAR(frac, q, 5 * std::sqrt(p * q / N));
    auto kd = kept.to(torch::kDouble);
    const double both = (kd.slice(0, 0, n - 1) * kd.slice(0, 1, n)).mean().item<double>();
    EXPECT_NEAR(both, q * q, 5 * std::sqrt(q * q * (1 - q * q) / N));
    const double both8 = (kd.slice(0, 0, n - 8) * kd.slice(0, 8, n)).mean().item<double>();  // next block's lane
    EXPECT_NEAR(both8, q * q, 5 * std::sqrt(q * q * (1 - q * q) / N));
    auto [out3, bits3] = dropout_forward(a, p, 1235);
    const double agree = ((out3 != 0) == kept).to(torch::kDouble).mean().item<double>();
    EXPECT_NEAR(agree, p * p + q * q, 5 * std::sqrt(0.25 / N));
  }
}

TEST(DropoutKernel, SeedFromTheGlobalGenerator) {
  torch::manual_seed(3);
  const auto s1 = draw_dropout_seed(), s2 = draw_dropout_seed();
  torch::manual_seed(3);
  EXPECT_EQ(draw_dropout_seed(), s1);
  EXPECT_NE(s1, s2);
}

}  // namespace
}  // namespace gsdiff
