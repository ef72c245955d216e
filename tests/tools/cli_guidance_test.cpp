// `gsdiff sample --class C --guidance W`: classifier-free guidance from the command line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_test_util.h"

namespace {

using gsdiff::testing::fresh_out_dir;
using gsdiff::testing::kQuickstartConfig;
using gsdiff::testing::run_cli;

const std::string kTinyGuided = " --set train.steps=20 --set data.batch_size=8 --set sample.num=4 --set sample.steps=3"
                                " --set train.log_every=0 --threads 1 --quiet";

using gsdiff::testing::bytes_of;

}  // namespace

TEST(CliGuidance, ClassAndGuidanceSteerTheSamples) {
  auto out = fresh_out_dir("guided");
  auto tr = run_cli("train --config " + kQuickstartConfig + kTinyGuided + " --set model.num_classes=10 --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  const std::string ckpt = out + "/ckpt-00000020.gsdiff";
  auto sample = [&](const std::string& flags, const std::string& name) {
    auto r = run_cli("sample --checkpoint " + ckpt + " --num 4 --steps 10 --seed 5 --threads 1 " + flags + " --out " +
                     out + "/" + name);
    EXPECT_EQ(r.rc, 0) << flags << "\n" << r.out;
    return bytes_of(out + "/" + name);
  };
  auto c3 = sample("--class 3", "c3.png"), c3_again = sample("--class 3", "c3b.png");
  auto c5 = sample("--class 5", "c5.png"), c3_w2 = sample("--class 3 --guidance 2", "c3w2.png");
  auto cycle = sample("--class -1 --guidance 1", "cycle.png");
  ASSERT_FALSE(c3.empty());
  EXPECT_EQ(c3, c3_again);  // same seed, same class: the same grid
  EXPECT_NE(c3, c5);        // the label reaches the network
  EXPECT_NE(c3, c3_w2);     // the guidance weight changes the chain
  EXPECT_FALSE(cycle.empty());

  auto bad = run_cli("sample --checkpoint " + ckpt + " --class 10 --num 2 --out " + out + "/bad.png");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--class: expected -1 or 0..9"), std::string::npos) << bad.out;
  auto no_class = run_cli("sample --checkpoint " + ckpt + " --guidance 2 --num 2 --out " + out + "/bad.png");
  EXPECT_NE(no_class.rc, 0);
  EXPECT_NE(no_class.out.find("--guidance needs --class"), std::string::npos) << no_class.out;
}

TEST(CliGuidance, UnconditionalCheckpointRefusesClass) {
  auto out = fresh_out_dir("unguided");
  auto tr = run_cli("train --config " + kQuickstartConfig + " --set train.steps=2 --set data.batch_size=4"
                    " --set sample.num=2 --set sample.steps=2 --threads 1 --quiet --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  auto r = run_cli("sample --checkpoint " + out + "/ckpt-00000002.gsdiff --class 1 --num 2 --out " + out + "/x.png");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("not class-conditional"), std::string::npos) << r.out;
}
