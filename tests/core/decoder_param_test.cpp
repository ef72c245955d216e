// Discretized decoder mass sums to one; eps / x0 / v / score conversions round-trip.
#include <gtest/gtest.h>

#include "core/decoder.h"
#include "core/parameterization.h"
#include "test_util.h"

using namespace gsdiff;

TEST(Decoder, BinProbabilitiesSumToOne) {
  auto o = torch::kFloat64;
  auto mean = torch::tensor({-1.2, -0.5, 0.0, 0.999, 1.5}, o);
  for (double log_std : {-7.0, -4.0, -1.0, 1.0}) {
    auto lp = discretized_gaussian_bin_log_probs(mean, torch::full_like(mean, log_std));  // [5, 256]
    EXPECT_TRUE(torch::allclose(lp.exp().sum(-1), torch::ones({5}, o), 1e-10, 1e-10)) << log_std;
  }
}

TEST(Decoder, MatchesNormalCdfDifferences) {
  // Middle bin of level 128 under N(0, 0.01^2): Phi((x+1/255)/s) - Phi((x-1/255)/s).
  auto o = torch::kFloat64;
  auto x = levels_to_unit(torch::tensor({128})).to(o);
  double s = 0.01, c = x.item<double>();
  auto Phi = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
  double expect = Phi((c + 1 / 255.0) / s) - Phi((c - 1 / 255.0) / s);
  auto got = discretized_gaussian_log_likelihood(x, torch::zeros_like(x), torch::full_like(x, std::log(s)));
  EXPECT_NEAR(got.exp().item<double>(), expect, 1e-12);
  // The open edge bin: level 0 under N(-1, s^2) has mass Phi(1/(255 s)).
  auto e = levels_to_unit(torch::tensor({0})).to(o);
  auto ge = discretized_gaussian_log_likelihood(e, e, torch::full_like(e, std::log(s)));
  EXPECT_NEAR(ge.exp().item<double>(), Phi(1 / (255.0 * s)), 1e-12);
  EXPECT_TRUE(torch::equal(unit_to_levels(levels_to_unit(torch::arange(256))), torch::arange(256)));
}

TEST(Parameterization, ConversionsRoundTrip) {
  auto g = gsdiff::testing::seeded(3);
  auto o = torch::TensorOptions().dtype(torch::kFloat64);
  auto x0 = at::randn({64}, g, o), eps = at::randn({64}, g, o);
  auto a = at::rand({64}, g, o) * 0.9 + 0.05, s = at::rand({64}, g, o) * 3 + 0.05;  // VE-like sigmas too
  auto xt = a * x0 + s * eps;
  for (Param p : {Param::Eps, Param::X0, Param::V, Param::Score}) {
    auto out = output_from_x0(p, x0, xt, a, s);
    EXPECT_TRUE(torch::allclose(x0_from_output(p, out, xt, a, s), x0, 1e-10, 1e-10)) << param_name(p);
    EXPECT_EQ(parse_param(param_name(p)), p);
  }
  EXPECT_TRUE(torch::allclose(output_from_x0(Param::Eps, x0, xt, a, s), eps, 1e-10, 1e-10));
  EXPECT_TRUE(torch::allclose(output_from_x0(Param::V, x0, xt, a, s), a * eps - s * x0, 1e-10, 1e-10));
  EXPECT_TRUE(torch::allclose(output_from_x0(Param::Score, x0, xt, a, s), -eps / s, 1e-10, 1e-10));
  EXPECT_THROW(parse_param("mu"), std::invalid_argument);
}
