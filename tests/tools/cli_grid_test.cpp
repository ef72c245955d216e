// `gsdiff sample --grid`: EDM's Karras levels from the command line, and bad grids refused by name.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tools/cli_test_util.h"

namespace cli_grid {

using gsdiff::testing::bytes_of;
using gsdiff::testing::fresh_out_dir;
using gsdiff::testing::run_cli;

// A 2-step edm-fashion checkpoint at a tiny size (trained once per process), or "" with the reason in `why`.
std::string edm_checkpoint(std::string& why) {
  static std::string ck, err;
  if (ck.empty() && err.empty()) {
    const std::string out = fresh_out_dir("grid");
    auto tr = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/edm-fashion.json --set train.steps=2"
                    " --set data.batch_size=4 --set sample.num=0 --set model.ch=8 --set 'model.ch_mult=[1]'"
                    " --set model.num_res_blocks=1 --set 'model.attn_resolutions=[]' --set model.num_groups=4"
                    " --set train.tensorboard=false --threads 1 --quiet --out " + out);
    if (tr.rc == 0) ck = out + "/ckpt-00000002.gsdiff";
    else err = tr.out;
  }
  why = err;
  return ck;
}

TEST(CliGrid, KarrasLevelsSampleAndBadGridsAreNamed) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "no Fashion-MNIST";
  std::string why;
  const std::string ck = edm_checkpoint(why);
  ASSERT_FALSE(ck.empty()) << why;
  const std::string dir = fresh_out_dir("grid_k"), png = dir + "/k.png";
  std::filesystem::create_directories(dir);
  auto s = run_cli("sample --checkpoint " + ck + " --sampler heun --grid karras --steps 6 --num 2 --threads 1 --out " + png);
  ASSERT_EQ(s.rc, 0) << s.out;
  EXPECT_EQ(bytes_of(png).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_NE(s.out.find("sampling step 6/6"), std::string::npos) << s.out;  // t_min 1e-3 > 0: 6 levels, then t = 0
  auto bad = run_cli("sample --checkpoint " + ck + " --grid cubic --num 2 --out " + png);
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--grid: expected uniform, quadratic or karras, got 'cubic'"), std::string::npos) << bad.out;
}

// EDM's sampling budget (Karras et al. 2022: 18 levels, 35 network calls; Heun at every level but the last step,
// which denoises) from each shipped EDM variant's config as it is, VP and VE: `--steps 18` on the Karras grid.
// The VE variant's t_min > 0 is what makes it 35: at t_min = 0 the lowest level is t = 0 itself, and it took 33.
TEST(CliGrid, EdmConfigsSampleEighteenLevelsInThirtyFiveCalls) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "no Fashion-MNIST";
  for (const std::string name : {"edm-fashion", "edm-ve-fashion"}) {
    const std::string out = fresh_out_dir("grid_35_" + name);
    auto tr = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/" + name + ".json --set train.steps=0"
                      " --set sample.num=0 --set model.ch=8 --set 'model.ch_mult=[1]' --set model.num_res_blocks=1"
                      " --set 'model.attn_resolutions=[]' --set model.num_groups=4 --set train.tensorboard=false"
                      " --threads 1 --quiet --out " + out);
    ASSERT_EQ(tr.rc, 0) << name << "\n" << tr.out;
    auto s = run_cli("sample --checkpoint " + out + "/ckpt-00000000.gsdiff --sampler heun --grid karras --steps 18 --num 1"
                     " --threads 1 --out " + out + "/s.png");
    ASSERT_EQ(s.rc, 0) << name << "\n" << s.out;
    EXPECT_NE(s.out.find("network calls 35 "), std::string::npos) << name << "\n" << s.out;
  }
}

// The samplers' own flags reach them: EDM's churn and DPM-Solver++'s order and SDE noise change the samples of a
// seed (churn 0 and order 2, eta 0 are the defaults: the same bytes as without the flags), and they are refused for
// other samplers and for an empty churn range, by name.
TEST(CliGrid, ChurnAndDpmSolverFlagsReachTheSampler) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "no Fashion-MNIST";
  std::string why;
  const std::string ck = edm_checkpoint(why);
  ASSERT_FALSE(ck.empty()) << why;
  const std::string dir = fresh_out_dir("grid_flags");
  std::filesystem::create_directories(dir);
  auto png = [&](const std::string& flags, const std::string& name) {
    auto r = run_cli("sample --checkpoint " + ck + " --grid karras --steps 6 --num 2 --seed 3 --threads 1 " + flags +
                     " --out " + dir + "/" + name + ".png");
    EXPECT_EQ(r.rc, 0) << flags << "\n" << r.out;
    return bytes_of(dir + "/" + name + ".png");
  };
  const auto heun = png("--sampler heun", "h"), heun0 = png("--sampler heun --churn 0", "h0");
  const auto churn = png("--sampler heun --churn 40 --churn-tmin 0.05 --churn-tmax 50 --churn-noise 1.003", "hc");
  EXPECT_EQ(heun, heun0);
  EXPECT_NE(heun, churn);
  const auto dpm = png("--sampler dpm-solver++", "d"), dpm2 = png("--sampler dpm-solver++ --order 2 --eta 0", "d2");
  EXPECT_EQ(dpm, dpm2);
  EXPECT_NE(dpm, png("--sampler dpm-solver++ --order 3", "d3"));
  EXPECT_NE(dpm, png("--sampler dpm-solver++ --eta 1", "de"));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--sampler ddim --churn 5", "--churn: an option of --sampler heun, not of ddim"},
      {"--sampler heun --order 3", "--order: an option of --sampler dpm-solver++, not of heun"},
      {"--sampler heun --churn-tmin 2 --churn-tmax 1", "--churn-tmin: must not exceed --churn-tmax"},
      {"--sampler dpm-solver++ --order 4", "--order: expected an integer in [2, 3], got '4'"}};
  for (const auto& [flags, msg] : bad) {
    auto r = run_cli("sample --checkpoint " + ck + " --num 2 --out " + dir + "/bad.png " + flags);
    EXPECT_EQ(r.rc, 2) << flags << "\n" << r.out;
    EXPECT_NE(r.out.find(msg), std::string::npos) << flags << "\n" << r.out;
  }
}

}  // namespace cli_grid
