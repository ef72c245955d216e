// Tests for toy sets: Markov entropy vs Monte-Carlo, GMM moments, checkerboard support.
#include <torch/torch.h>

#include <cmath>

#include "data/toy.h"
#include "data_test_helpers.h"
#include "test_util.h"

using namespace gsdiff::data;
using gsdiff::testing::mc_tol;
using gsdiff::testing::seeded;

TEST(Toy, MarkovEntropyMatchesMonteCarlo) {
  auto chain = MarkovChain::example(8);
  auto x = chain.sample(200000, seeded(7));
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{200000, 8}));
  EXPECT_GE(x.min().item<int64_t>(), 0);
  EXPECT_LE(x.max().item<int64_t>(), 3);
  auto nll = -chain.log_prob(x);
  const double mc = nll.mean().item<double>(), sd = nll.std().item<double>();
  const double h = chain.entropy_nats();
  EXPECT_NEAR(mc, h, mc_tol(sd, x.size(0)));
  EXPECT_GT(h, 0.0);
  EXPECT_LT(h, 8 * std::log(4.0));
}

TEST(Toy, MarkovEntropyClosedFormsAgree) {
  // Stationary start: H = H(pi) + (L-1) sum_i pi_i H(P_i).
  auto chain = MarkovChain::example(5);
  auto pi = chain.stationary();
  EXPECT_TRUE(torch::allclose(torch::matmul(pi, chain.transition()), pi, 1e-12, 1e-12));
  auto P = chain.transition();
  double h_pi = -(pi * pi.log()).sum().item<double>();
  double h_rows = -(pi * (P * P.log()).sum(1)).sum().item<double>();
  EXPECT_NEAR(chain.entropy_nats(), h_pi + 4 * h_rows, 1e-10);
  // I.i.d. uniform chain: H = L log K exactly.
  MarkovChain iid(torch::full({3, 3}, 1.0 / 3, torch::kDouble), 6);
  EXPECT_NEAR(iid.entropy_nats(), 6 * std::log(3.0), 1e-12);
  // Deterministic cycle from a fixed start: zero entropy.
  MarkovChain cycle(torch::tensor({0., 1., 1., 0.}).reshape({2, 2}), 4, torch::tensor({1., 0.}));
  EXPECT_NEAR(cycle.entropy_nats(), 0.0, 1e-12);
  EXPECT_TRUE(torch::equal(cycle.sample(3, seeded(1)), torch::tensor({0, 1, 0, 1}, torch::kInt64).repeat({3, 1})));
  EXPECT_ERROR_WITH(MarkovChain(torch::ones({2, 2}), 3), std::invalid_argument, "rows must be non-negative and sum to 1");
}

TEST(Toy, SamplingIsReproducibleFromTheGenerator) {
  auto spec = GmmSpec::ring();
  EXPECT_TRUE(torch::equal(sample_gmm(100, spec, seeded(3)), sample_gmm(100, spec, seeded(3))));
  EXPECT_FALSE(torch::equal(sample_gmm(100, spec, seeded(3)), sample_gmm(100, spec, seeded(4))));
  auto chain = MarkovChain::example();
  EXPECT_TRUE(torch::equal(chain.sample(50, seeded(3)), chain.sample(50, seeded(3))));
}

TEST(Toy, GmmMomentsMatchTheMixture) {
  GmmSpec spec;
  spec.means = {{-1.0, 0.5}, {2.0, 1.0}, {0.0, -2.0}};
  spec.stds = {0.3, 0.5, 0.2};
  spec.weights = {0.5, 0.3, 0.2};
  const int64_t n = 400000;
  auto x = sample_gmm(n, spec, seeded(11)).to(torch::kDouble);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{n, 2}));
  auto m = gmm_mean(spec), c = gmm_covariance(spec);
  // Closed forms by hand: mean = (0.1, 0.15).
  EXPECT_NEAR(m[0].item<double>(), 0.1, 1e-12);
  EXPECT_NEAR(m[1].item<double>(), 0.15, 1e-12);
  auto xm = x.mean(0);
  auto xc = torch::matmul((x - xm).t(), x - xm) / double(n - 1);
  for (int i = 0; i < 2; ++i) {
    double sd = std::sqrt(c[i][i].item<double>());
    EXPECT_NEAR(xm[i].item<double>(), m[i].item<double>(), mc_tol(sd, n));
    for (int j = 0; j < 2; ++j) {
      // Tolerance for a sample covariance: a generous multiple of its scale / sqrt(n).
      double scale = std::sqrt(c[i][i].item<double>() * c[j][j].item<double>());
      EXPECT_NEAR(xc[i][j].item<double>(), c[i][j].item<double>(), mc_tol(3.0 * scale, n)) << i << "," << j;
    }
  }
}

TEST(Toy, CheckerboardLiesOnBlackCells) {
  auto x = sample_checkerboard(20000, seeded(5));
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{20000, 2}));
  EXPECT_GE(x.min().item<float>(), -2.0f);
  EXPECT_LE(x.max().item<float>(), 2.0f);
  auto cell = torch::floor(x + 2.0).to(torch::kInt64).clamp(0, 3);
  EXPECT_TRUE(((cell.select(1, 0) + cell.select(1, 1)).remainder(2) == 0).all().item<bool>());
  // Eight black cells, each about 1/8 of the mass.
  auto counts = torch::bincount(cell.select(1, 0) * 4 + cell.select(1, 1), {}, 16).to(torch::kDouble) / 20000.0;
  for (int c = 0; c < 16; ++c) {
    bool black = ((c / 4) + (c % 4)) % 2 == 0;
    if (black)
      EXPECT_NEAR(counts[c].item<double>(), 0.125, mc_tol(std::sqrt(0.125 * 0.875), 20000));
    else
      EXPECT_EQ(counts[c].item<double>(), 0.0);
  }
  EXPECT_ERROR_WITH(sample_checkerboard(4, seeded(0), 3), std::invalid_argument, "cells must be even");
}
