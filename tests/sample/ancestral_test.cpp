// Ancestral sampler determinism and grids; PNG writer round trip; text8 writer.
#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

#include "core/registry.h"
#include "sample/ancestral.h"
#include "sample/writers.h"

namespace gsdiff {
namespace {

DenoiseFn zero_net() {
  return [](const torch::Tensor& x, const torch::Tensor& t) { return torch::zeros_like(x, torch::kFloat32) + 0.1; };
}

TEST(Ancestral, DeterministicForAFixedGenerator) {
  register_builtins();
  auto p = make_process({{"name", "gaussian-vp"}, {"steps", 0}, {"schedule", "linear-logsnr"}});
  auto grid = default_grid(*p, 20);
  ASSERT_EQ(grid.size(), 21u);
  EXPECT_EQ(grid.front(), 1.0);
  EXPECT_EQ(grid.back(), 0.0);
  auto g1 = at::detail::createCPUGenerator(5), g2 = at::detail::createCPUGenerator(5), g3 = at::detail::createCPUGenerator(6);
  int64_t calls = 0;
  auto a = sample_ancestral(*p, zero_net(), grid, {4, 1, 4, 4}, g1, [&](int64_t, int64_t) { ++calls; });
  auto b = sample_ancestral(*p, zero_net(), grid, {4, 1, 4, 4}, g2);
  auto c = sample_ancestral(*p, zero_net(), grid, {4, 1, 4, 4}, g3);
  EXPECT_EQ(calls, 20);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{4, 1, 4, 4}));
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
}

TEST(Ancestral, DiscreteTimeGridIsTheProcessGrid) {
  register_builtins();
  auto p = make_process({{"name", "gaussian-vp"}, {"steps", 10}});
  auto g = default_grid(*p);
  ASSERT_EQ(g.size(), 11u);
  EXPECT_DOUBLE_EQ(g[1], 0.9);
  auto sub = default_grid(*p, 5);
  ASSERT_EQ(sub.size(), 6u);
  EXPECT_DOUBLE_EQ(sub[1], 0.8);
  auto gen = at::detail::createCPUGenerator(0);
  EXPECT_THROW(sample_ancestral(*p, zero_net(), {0.0, 1.0}, {1, 2}, gen), std::invalid_argument);
}

TEST(Writers, PngRoundTripIsByteExact) {
  auto dir = std::filesystem::temp_directory_path() / ("gsdiff_sample_png_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto gen = at::detail::createCPUGenerator(1);
  for (int64_t C : {1, 3}) {
    auto imgs = at::randint(0, 256, {5, C, 6, 7}, gen, torch::TensorOptions().dtype(torch::kUInt8));
    auto grid = make_grid(imgs, 3, 2);  // 2 rows x 3 cols
    ASSERT_EQ(grid.sizes(), (std::vector<int64_t>{C, 2 * 8 + 2, 3 * 9 + 2}));
    EXPECT_TRUE(torch::equal(grid.narrow(1, 2 + 8, 6).narrow(2, 2 + 9, 7), imgs[4]));  // image 4 at row 1, col 1
    auto path = (dir / ("g" + std::to_string(C) + ".png")).string();
    write_png(path, grid);
    EXPECT_TRUE(torch::equal(read_png(path), grid));
  }
}

TEST(Writers, Text8Tokens) {
  auto t = torch::tensor({0, 1, 26, 25, 27}, torch::kLong).reshape({1, 5});
  EXPECT_EQ(tokens_to_text8(t), "ab z_\n");
}

}  // namespace
}  // namespace gsdiff
