// A non-finite bound is an error naming the process, term, time and example; the first non-finite training step
// is diagnosed in metrics.jsonl (issue 20). Blackout with an exponential schedule keeps survivors at t = 1
// (alpha(1) = e^-5) against its all-zeros prior: the prior term is +inf, exactly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tools/cli_test_util.h"

namespace {

using gsdiff::testing::fresh_out_dir;
using gsdiff::testing::run_cli;

TEST(CliNonFinite, InfinitePriorIsDiagnosedInTrainingAndRefusedByEval) {
  const std::string fashion = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(fashion + "/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not found under " << fashion;
  auto out = fresh_out_dir("nonfinite");
  auto tr = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/blackout-fashion.json" +
                    " --set 'process.schedule={\"type\":\"exponential\",\"rate\":5.0}' --set process.steps=0"
                    " --set model.ch=8 --set 'model.ch_mult=[1]' --set model.num_res_blocks=1 --set 'model.attn_resolutions=[]'"
                    " --set model.num_groups=4 --set data.batch_size=2 --set train.steps=2 --set train.log_every=1"
                    " --set sample.num=0 --set train.tensorboard=false --threads 1 --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  EXPECT_NE(tr.out.find("first cause: process 'blackout', loss of term 'prior' (inf)"), std::string::npos) << tr.out;
  std::ifstream in(out + "/metrics.jsonl");
  std::string line;
  int diagnoses = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("nonfinite")) continue;
    ++diagnoses;
    EXPECT_EQ(j["step"], 1);
    EXPECT_EQ(j["nonfinite"]["term"], "prior");
    EXPECT_EQ(j["nonfinite"]["stage"], "loss");
    EXPECT_EQ(j["nonfinite"]["value"], "inf");
    EXPECT_EQ(j["nonfinite"]["example"], 0);
  }
  EXPECT_EQ(diagnoses, 1);  // the first non-finite step only

  auto ev = run_cli("eval --checkpoint " + out + "/ckpt-00000002.gsdiff --limit 3 --batch-size 3 --threads 1");
  EXPECT_EQ(ev.rc, 1) << ev.out;
  EXPECT_EQ(ev.out.find("null"), std::string::npos) << ev.out;
  EXPECT_NE(ev.out.find("example 0 of the evaluation data: process 'blackout': term 'prior' is inf at t = 1"),
            std::string::npos) << ev.out;
}

}  // namespace
