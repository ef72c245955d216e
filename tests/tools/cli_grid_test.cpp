// `gsdiff sample --grid`: EDM's Karras levels from the command line, and bad grids refused by name.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tools/cli_test_util.h"

namespace cli_grid {

using gsdiff::testing::bytes_of;
using gsdiff::testing::fresh_out_dir;
using gsdiff::testing::run_cli;

TEST(CliGrid, KarrasLevelsSampleAndBadGridsAreNamed) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "no Fashion-MNIST";
  const std::string out = fresh_out_dir("grid");
  auto tr = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/edm-fashion.json --set train.steps=2"
                    " --set data.batch_size=4 --set sample.num=0 --set model.ch=8 --set 'model.ch_mult=[1]'"
                    " --set model.num_res_blocks=1 --set 'model.attn_resolutions=[]' --set model.num_groups=4"
                    " --set train.tensorboard=false --threads 1 --quiet --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  const std::string ck = out + "/ckpt-00000002.gsdiff", png = out + "/k.png";
  auto s = run_cli("sample --checkpoint " + ck + " --sampler heun --grid karras --steps 6 --num 2 --threads 1 --out " + png);
  ASSERT_EQ(s.rc, 0) << s.out;
  EXPECT_EQ(bytes_of(png).substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_NE(s.out.find("sampling step 6/6"), std::string::npos) << s.out;  // t_min 1e-3 > 0: 6 levels, then t = 0
  auto bad = run_cli("sample --checkpoint " + ck + " --grid cubic --num 2 --out " + png);
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--grid: expected uniform, quadratic or karras, got 'cubic'"), std::string::npos) << bad.out;
}

}  // namespace cli_grid
