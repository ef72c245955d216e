// Shared test helpers: seeded generator fixture and sample-size tolerances.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <cmath>

namespace gsdiff::testing {

// A generator seeded per test, so every random quantity is reproducible.
inline torch::Generator seeded(uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  return g;
}

// Tolerance for a Monte-Carlo mean of n samples with standard deviation sd: z standard errors.
inline double mc_tol(double sd, int64_t n, double z = 5.0) { return z * sd / std::sqrt(double(n)); }

class Seeded : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(1234); gen = seeded(1234); }
  torch::Generator gen;
};

}  // namespace gsdiff::testing
