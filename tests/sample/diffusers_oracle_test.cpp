// Peer oracle: gsdiff's ancestral, DDIM and DPM-Solver++ samplers against diffusers' schedulers on one export.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "core/registry.h"
#include "models/model_test_util.h"
#include "sample/export.h"
#include "sample/guidance.h"
#include "sample/sampler.h"
#include "test_util.h"
#include "train/evaluate.h"

namespace gsdiff {
namespace {

std::string oracle_tmp(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / "gsdiff_diffusers_oracle";
  std::filesystem::create_directories(d);
  return (d / name).string();
}

bool have_diffusers(const std::string& py) {
  return std::system((py + " -c 'import diffusers' >/dev/null 2>&1").c_str()) == 0;
}

std::vector<double> oracle_values(const std::string& path) {
  std::ifstream in(path);
  std::vector<double> v;
  double x;
  while (in >> x) v.push_back(x);
  return v;
}

struct OracleCase {
  std::string sampler;
  int64_t steps;
};

class DiffusersOracle : public ::testing::TestWithParam<OracleCase> {};

// DDPM's discrete schedule (linear beta 1e-4..0.02, T = 1000, eps prediction) and a seeded random U-Net with its
// zero-initialised layers perturbed, exported to TorchScript: gsdiff's sampler (what `gsdiff sample --model`
// runs) on the export, and diffusers 0.42.1 (pinned in scripts/requirements.txt) stepping the same export from the
// same x_T (the same torch.Generator stream; ancestral also draws the same per-step noise, one N(0, I) per step in
// order), must end at the same samples. gsdiff's grid round(k T / n) is diffusers' "trailing" spacing shifted by
// one index (diffusers' j is DDPM's step j + 1).
TEST_P(DiffusersOracle, SameSamplesFromTheSameExportAndNoise) {
  const std::string py = GSDIFF_PYTHON;
  if (!have_diffusers(py)) GTEST_SKIP() << py << " cannot import diffusers (pinned in scripts/requirements.txt): run scripts/setup.sh";
  const auto c = GetParam();
  register_builtins();
  auto process = make_process({{"name", "gaussian-vp"}, {"steps", 1000}, {"schedule", "linear-beta-discrete"},
                               {"parameterization", "eps"}});
  torch::manual_seed(3);
  auto net = as_denoiser(UNet(testing::tiny_unet().dropout(0.0)));
  testing::perturb_zero_params(*net, 0.2);
  net->eval();
  const std::vector<int64_t> shape{3, 8, 8};
  auto meta = export_meta(process->options_json(), net->config(), shape, "");
  meta["process"]["name"] = process->name();
  // Files per case and per process: ctest -j runs the cases side by side (a shared export was once rewritten while
  // another case read it: "PytorchStreamReader failed reading file").
  const std::string tag = c.sampler + "_" + std::to_string(c.steps) + "_" + std::to_string(::getpid());
  const auto path = oracle_tmp(tag + "_unet_ddpm.pt");
  export_model(net, meta, torch::zeros({2, 3, 8, 8}), torch::full({2}, 0.5), path);
  auto ex = load_export(path);  // as `gsdiff sample --model` does: the process from the export's metadata
  auto from_meta = make_process(ex.meta.at("process"));

  const int64_t B = 6;
  const uint64_t seed = 11;
  auto gen = testing::seeded(seed);
  SamplerOptions so;
  auto ours = make_sampler(c.sampler, so)(*from_meta, jit_denoise_fn(ex.module), time_grid(*from_meta, c.steps), {B, 3, 8, 8}, gen, {});
  ours = ours.to(torch::kFloat64).flatten();

  const auto out = oracle_tmp(tag + ".txt"), log = oracle_tmp(tag + ".log");
  const std::string cmd = py + " " + GSDIFF_SOURCE_DIR + "/tests/sample/diffusers_oracle.py " + path + " " + c.sampler + " " +
                          std::to_string(c.steps) + " " + std::to_string(seed) + " " + std::to_string(B) + " " + out + " > " +
                          log + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << std::ifstream(log).rdbuf();
  auto theirs = torch::tensor(oracle_values(out), torch::kFloat64);
  ASSERT_EQ(theirs.numel(), ours.numel()) << std::ifstream(log).rdbuf();
  // Both run the same float32 network on float32 states; diffusers forms alphas_cumprod by a float32 cumprod of
  // 1000 factors, gsdiff in float64, and each step divides by sqrt(alpha-bar) = 0.0064 at t = 1. Those roundings
  // (relative 1e-6 per step, amplified by the first steps' 1 / alpha) bound the agreement at 1e-4 of the samples'
  // scale; a wrong coefficient, grid index, variance or noise draw moves whole samples by O(1).
  const double scale = theirs.abs().max().item<double>();
  const double diff = (ours - theirs).abs().max().item<double>();
  std::cout << c.sampler << " " << c.steps << " steps: max |gsdiff - diffusers| " << diff << " of scale " << scale << "\n";
  EXPECT_LT(diff, 1e-4 * scale) << c.sampler << ": max |diff| " << diff << " of scale " << scale;
  // Not trivially equal: the samples depend on the network (a sampler that ignored it would still agree).
  EXPECT_GT(ours.std().item<double>(), 0.05);
}

INSTANTIATE_TEST_SUITE_P(Schedulers, DiffusersOracle,
                         ::testing::Values(OracleCase{"ancestral", 50}, OracleCase{"ancestral", 1000},
                                           OracleCase{"ddim", 50}, OracleCase{"dpm-solver++", 25}),
                         [](const auto& info) {
                           std::string n = info.param.sampler + "_" + std::to_string(info.param.steps);
                           for (auto& ch : n)
                             if (!isalnum(ch)) ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace gsdiff
