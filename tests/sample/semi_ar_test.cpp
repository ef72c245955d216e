// Semi-autoregressive block sampling (sample_blocks, what `gsdiff sample --length N --block B` runs).
#include <gtest/gtest.h>

#include "core/categorical.h"
#include "core/registry.h"
#include "sample/semi_ar.h"
#include "test_util.h"

namespace gsdiff {
namespace semi_ar_test {

constexpr int64_t kW = 6, kK = 4;

std::unique_ptr<Process> sa_make() {
  register_builtins();
  return make_process({{"name", "absorbing"}, {"K", kK}, {"steps", 0}, {"dtype", "float64"}});
}

// A denoiser whose law at a masked position depends on the tokens left of it (so context matters), recording the
// state of every call.
struct Recorder {
  std::vector<torch::Tensor> inputs;
  DenoiseFn fn() {
    return [this](const torch::Tensor& xt, const torch::Tensor&) {
      inputs.push_back(xt.clone());
      auto prev = torch::cat({torch::zeros({xt.size(0), 1}, xt.options()), xt.narrow(1, 0, xt.size(1) - 1)}, 1);  // [B, W]
      auto oh = torch::one_hot(prev.clamp_max(kK - 1), kK).to(torch::kFloat64);  // [B, W, K]
      return 3.0 * oh;  // favours repeating the token on the left
    };
  }
};

// block = W and length = W: the sampler itself, the same draws for the same seed.
TEST(SemiAr, BlockEqualToTheWindowIsThePlainSampler) {
  auto p = sa_make();
  Recorder r;
  auto grid = time_grid(*p, 8);
  auto g1 = testing::seeded(5), g2 = testing::seeded(5);
  auto plain = make_sampler("ancestral")(*p, r.fn(), grid, {16, kW}, g1, {});
  auto blocks = sample_blocks(make_sampler("ancestral"), *p, r.fn(), grid, 16, kW, BlockOptions().length(kW).block(kW), g2);
  EXPECT_TRUE(torch::equal(plain, blocks));
}

// Beyond the window: length 13 from W = 6, block 2 (context 4). The first window is the plain sampler's draw (same
// seed); window w >= 1 sees out[:, 2w : 2w + 4] as its first four tokens in every network call (kept context, never
// masked or altered) and contributes out[:, 2w + 4 : 2w + 6] (the last one token); every token is data.
TEST(SemiAr, LaterWindowsKeepTheirContextAndNeverAlterEarlierTokens) {
  auto p = sa_make();
  auto grid = time_grid(*p, 8);
  const int64_t S = int64_t(grid.size()) - 1, N = 16, C = kW - 2;
  Recorder first, all;
  auto g1 = testing::seeded(7), g2 = testing::seeded(7);
  auto plain = make_sampler("ancestral")(*p, first.fn(), grid, {N, kW}, g1, {});
  auto out = sample_blocks(make_sampler("ancestral"), *p, all.fn(), grid, N, kW, BlockOptions().length(13).block(2), g2);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{N, 13}));
  EXPECT_TRUE(((out >= 0) & (out < kK)).all().item<bool>());
  EXPECT_TRUE(torch::equal(out.narrow(1, 0, kW), plain)) << "the first window was altered";
  const int64_t windows = 1 + 4;  // 6 + 2 + 2 + 2 + 1 tokens
  ASSERT_EQ(int64_t(all.inputs.size()), windows * S);
  for (int64_t w = 1; w < windows; ++w) {
    auto ctx = out.narrow(1, 2 * w, C);
    for (int64_t c = 0; c < S; ++c)
      EXPECT_TRUE(torch::equal(all.inputs[w * S + c].narrow(1, 0, C), ctx)) << "window " << w << " call " << c;
    // the new part starts masked (absorbing prior) at the window's first call
    EXPECT_TRUE((all.inputs[w * S].narrow(1, C, kW - C) == kK).all().item<bool>()) << "window " << w;
  }
}

TEST(SemiAr, RefusesBlocksThatDoNotFit) {
  auto p = sa_make();
  Recorder r;
  auto gen = testing::seeded(0);
  auto grid = time_grid(*p, 4);
  EXPECT_THROW(sample_blocks(make_sampler("ancestral"), *p, r.fn(), grid, 2, kW, BlockOptions().length(5).block(2), gen), std::invalid_argument);
  EXPECT_THROW(sample_blocks(make_sampler("ancestral"), *p, r.fn(), grid, 2, kW, BlockOptions().length(12).block(7), gen), std::invalid_argument);
  EXPECT_THROW(sample_blocks(make_sampler("ancestral"), *p, r.fn(), grid, 2, kW, BlockOptions().length(12).block(0), gen), std::invalid_argument);
}

}  // namespace semi_ar_test
}  // namespace gsdiff
