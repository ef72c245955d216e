// `gsdiff sample --flow-eta`: a discrete-flow model sampled at another eta than it was trained at (Campbell et al. 2024).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "tools/cli_test_util.h"

namespace cli_flow_eta {

using gsdiff::testing::bytes_of;
using gsdiff::testing::fresh_out_dir;
using gsdiff::testing::run_cli;

// A 0-step text8-dfm checkpoint (eta 0) at a tiny size: --flow-eta 0 is the process's own eta (the same bytes as
// without the flag), --flow-eta 3 changes the chain (the eta part of the rates moves tokens the minimal rates keep),
// on the checkpoint and on its export alike; another process refuses the flag by name.
TEST(CliFlowEta, SamplingEtaReachesTheProcessAndOtherProcessesRefuseIt) {
  if (gsdiff::testing::gcide_text8().empty()) GTEST_SKIP() << "no GCIDE text (dict-gcide)";
  const std::string out = fresh_out_dir("cli_flow_eta");
  const std::string shrink = " --set model.dim=32 --set model.depth=1 --set model.num_heads=2 --set model.cond_dim=16"
                             " --set data.seq_len=16 --set data.batch_size=4 --set data.path=" + gsdiff::testing::gcide_text8() +
                             " --set data.train_frac=0.9 --set data.valid_frac=0.95 --set train.steps=0 --set sample.num=0"
                             " --set train.tensorboard=false --threads 1 --quiet";
  auto tr = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/text8-dfm.json" + shrink + " --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  const std::string ck = out + "/ckpt-00000000.gsdiff";
  ASSERT_EQ(run_cli("export --checkpoint " + ck + " --out " + out + "/m.pt").rc, 0);
  auto text = [&](const std::string& source, const std::string& flags, const std::string& name) {
    auto r = run_cli("sample " + source + " --sampler tau-leaping --steps 20 --num 4 --seed 5 --no-ema --threads 1 " + flags +
                     " --out " + out + "/" + name + ".txt");
    EXPECT_EQ(r.rc, 0) << flags << "\n" << r.out;
    return bytes_of(out + "/" + name + ".txt");
  };
  for (const std::string& source : {"--checkpoint " + ck, "--model " + out + "/m.pt"}) {
    const auto plain = text(source, "", "p"), zero = text(source, "--flow-eta 0", "z"), three = text(source, "--flow-eta 3", "t");
    EXPECT_EQ(std::count(plain.begin(), plain.end(), '\n'), 4) << plain;
    EXPECT_EQ(plain, zero) << source;
    EXPECT_NE(plain, three) << source;
  }
  auto q = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/text8-absorbing.json" + shrink + " --out " + out + "/abs");
  ASSERT_EQ(q.rc, 0) << q.out;
  auto bad = run_cli("sample --checkpoint " + out + "/abs/ckpt-00000000.gsdiff --flow-eta 1 --num 2 --out " + out + "/b.txt");
  EXPECT_EQ(bad.rc, 2) << bad.out;
  EXPECT_NE(bad.out.find("--flow-eta: an option of discrete-flow processes"), std::string::npos) << bad.out;
  auto neg = run_cli("sample --checkpoint " + ck + " --flow-eta -1 --num 2 --out " + out + "/n.txt");
  EXPECT_EQ(neg.rc, 2) << neg.out;
  EXPECT_NE(neg.out.find("--flow-eta"), std::string::npos) << neg.out;
}

}  // namespace cli_flow_eta
