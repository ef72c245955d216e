// gaussian-embed through the samplers: chains end in tokens (Process::to_data) distributed as the data.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "core/embedded_gaussian_test_util.h"
#include "core/registry.h"
#include "sample/ancestral.h"
#include "sample/sampler.h"
#include "test_util.h"

using namespace gsdiff;

class EmbeddedSamplingTest : public gsdiff::testing::Seeded {};

// With the exact denoiser E[e(x0) | z_t] on the known law over pairs (K = 3, L = 2), ancestral sampling
// (200 steps) and DDIM (eta = 1, 200 steps) return int64 tokens whose pair frequencies match the law:
// each of the 9 cells within 5 binomial standard errors plus 0.01 for the finite-step discretisation.
TEST_F(EmbeddedSamplingTest, ChainsEndInTokensDistributedAsTheData) {
  const int64_t N = 4000;
  auto probs = gsdiff::testing::pair_probs();  // [3, 3]
  for (std::string cb : {"analog-bits", "onehot"}) {
    auto proc = make_process({{"name", "gaussian-embed"}, {"K", 3}, {"codebook", cb}, {"logsnr_max", 8.0}});
    auto& p = dynamic_cast<const EmbeddedGaussianProcess&>(*proc);
    auto f = gsdiff::testing::exact_pair_denoiser(p, probs);
    for (std::string name : {"ancestral", "ddim"}) {
      SamplerOptions o;
      if (name == "ddim") o.method = to_json(DdimOptions().eta(1.0));
      auto x = make_sampler(name, o)(p, f, time_grid(p, 200), {N, 2}, gen, {});  // [N, 2]
      ASSERT_EQ(x.scalar_type(), torch::kLong) << cb << " " << name;
      ASSERT_EQ(x.sizes(), (std::vector<int64_t>{N, 2})) << cb << " " << name;
      auto counts = torch::bincount(x.select(1, 0) * 3 + x.select(1, 1), {}, 9).to(torch::kFloat64) / double(N);
      auto pf = probs.flatten();
      auto tol = 5.0 * (pf * (1 - pf) / double(N)).sqrt() + 0.01;
      EXPECT_TRUE(torch::all((counts - pf).abs() <= tol).item<bool>())
          << cb << " " << name << "\nfreq " << counts << "\nlaw " << pf;
      std::cout << cb << " " << name << ": max cell deviation " << (counts - pf).abs().max().item<double>() << "\n";
    }
  }
}
