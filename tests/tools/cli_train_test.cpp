// The gsdiff train / eval / sample commands end to end on a few Fashion-MNIST steps, plus errors and --help.
#include <gtest/gtest.h>

#include "tools/cli_test_util.h"
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace {

using gsdiff::testing::fresh_out_dir;
using gsdiff::testing::kQuickstartConfig;

using gsdiff::testing::Run;
using gsdiff::testing::run_cli;

const std::string kTinyTrain = " --set train.steps=3 --set data.batch_size=4 --set eval.limit=6 --set eval.batch_size=3"
                          " --set sample.num=4 --set sample.steps=3 --set train.log_every=1 --threads 1 --quiet";

TEST(CliTrain, TrainEvalSampleEndToEnd) {
  auto out = fresh_out_dir("e2e");
  auto tr = run_cli("train --config " + kQuickstartConfig + kTinyTrain + " --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  auto ckpt = out + "/ckpt-00000003.gsdiff";
  ASSERT_TRUE(std::filesystem::exists(ckpt)) << tr.out;
  EXPECT_TRUE(std::filesystem::exists(out + "/samples-3.png"));
  std::ifstream metrics(out + "/metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("loss") && j.contains("lr") && j.contains("grad_norm") && j.contains("bits"));
    ++lines;
  }
  EXPECT_EQ(lines, 3);

  auto ev = run_cli("eval --checkpoint " + ckpt + " --limit 6 --threads 1 --time-samples 32 --per-example");
  ASSERT_EQ(ev.rc, 0) << ev.out;
  auto j = nlohmann::json::parse(ev.out.substr(ev.out.find('{')));
  EXPECT_EQ(j["unit"], "bits/dim");
  EXPECT_EQ(j["examples"], 6);
  EXPECT_EQ(j["estimate"], "monte-carlo");
  // The reported bound and standard error are the mean and sd / sqrt(n) of the per-example bounds it prints.
  auto per = j["per_example"].get<std::vector<double>>();
  ASSERT_EQ(per.size(), 6u);
  double mean = 0, ss = 0;
  for (double v : per) mean += v / 6;
  for (double v : per) ss += (v - mean) * (v - mean);
  EXPECT_NEAR(j["bound"].get<double>(), mean, 1e-9 * mean);
  EXPECT_NEAR(j["stderr"].get<double>(), std::sqrt(ss / 5 / 6), 1e-6 * std::sqrt(ss / 30));
  // The converged quadrature (a different path through negative_elbo) on the same 6 images agrees with the
  // Monte-Carlo estimate: their difference is only the t-sampling noise of 32 t per image, which is smaller than
  // the stderr over images (that one also holds the spread between images); 4 of those is a loose, safe bound.
  auto ex = run_cli("eval --checkpoint " + ckpt + " --limit 6 --threads 1 --exact");
  ASSERT_EQ(ex.rc, 0) << ex.out;
  auto e = nlohmann::json::parse(ex.out.substr(ex.out.find('{')));
  EXPECT_EQ(e["estimate"], "exact") << ex.out;
  EXPECT_NEAR(j["bound"].get<double>(), e["bound"].get<double>(), 4 * j["stderr"].get<double>()) << ex.out;
  // An upper bound on -log2 p per dimension of 8-bit Fashion-MNIST cannot lie below its entropy (the best published
  // models reach about 2.9 bits/dim) nor, for any sane 3-step model, far above 8 (uniform over 256 levels); a
  // broken unit (nats, per image instead of per dimension) or sign lands outside [1, 16].
  EXPECT_GT(e["bound"].get<double>(), 1.0);
  EXPECT_LT(e["bound"].get<double>(), 16.0);

  auto png = out + "/s.png";
  auto sa = run_cli("sample --checkpoint " + ckpt + " --num 4 --steps 3 --out " + png + " --threads 1");
  ASSERT_EQ(sa.rc, 0) << sa.out;
  std::ifstream in(png, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");

  // Resume continues from the newest checkpoint to a longer run.
  auto re = run_cli("train --config " + kQuickstartConfig + kTinyTrain + " --set train.steps=5 --out " + out + " --resume auto");
  ASSERT_EQ(re.rc, 0) << re.out;
  EXPECT_TRUE(std::filesystem::exists(out + "/ckpt-00000005.gsdiff"));
}

// One run per --out: a fresh run among another run's checkpoints, or a resume from below the newest, is
// refused with the flag named (pruning and --resume auto would otherwise mix two runs and delete one's files).
TEST(CliTrain, OutDirHoldsOneRun) {
  auto out = fresh_out_dir("onerun");
  auto tr = run_cli("train --config " + kQuickstartConfig + kTinyTrain + " --set train.checkpoint_every=1 --set train.keep_checkpoints=3 --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  ASSERT_TRUE(std::filesystem::exists(out + "/ckpt-00000001.gsdiff"));
  auto again = run_cli("train --config " + kQuickstartConfig + kTinyTrain + " --out " + out);
  EXPECT_NE(again.rc, 0);
  EXPECT_NE(again.out.find("--out " + out + " already holds checkpoints"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("Exception raised from"), std::string::npos) << again.out;  // no C++ backtrace
  auto older = run_cli("train --config " + kQuickstartConfig + kTinyTrain + " --set train.steps=4 --out " + out +
                       " --resume " + out + "/ckpt-00000001.gsdiff");
  EXPECT_NE(older.rc, 0);
  EXPECT_NE(older.out.find("holds a later checkpoint (step 3)"), std::string::npos) << older.out;
  EXPECT_TRUE(std::filesystem::exists(out + "/ckpt-00000003.gsdiff"));  // nothing was removed
  EXPECT_TRUE(std::filesystem::exists(out + "/ckpt-00000001.gsdiff"));
}

// --device cuda where it cannot run: one message naming the LibTorch the binary was built against.
TEST(CliTrain, DeviceCudaWithoutCudaNamesTheLibTorch) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is visible";
  auto r = run_cli("bench --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/models/unet-tiny.json --device cuda");
  EXPECT_NE(r.rc, 0);
#if defined(GSDIFF_WITH_CUDA)
  const std::string want = "this gsdiff has CUDA (LibTorch " TORCH_VERSION ") but no CUDA device is visible";
#else
  const std::string want = "built against a CPU-only LibTorch (" TORCH_VERSION ")";
#endif
  EXPECT_NE(r.out.find("--device cuda: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(want), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Exception raised from"), std::string::npos) << r.out;
}

// --conv-algorithm on the commands that run a network: another value is named with both choices before anything
// is written, and an export (TorchScript's own convolutions) refuses winograd rather than ignore it.
TEST(CliTrain, ConvAlgorithmFlagIsCheckedAndNamed) {
  const std::string out = fresh_out_dir("convalgo");
  auto r = run_cli("train --config " + kQuickstartConfig + " --conv-algorithm fft --out " + out);
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("--conv-algorithm: expected direct or winograd, got 'fft'"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(out));
  r = run_cli("bench --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/models/unet-tiny.json --conv-algorithm Winograd");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("got 'Winograd'"), std::string::npos) << r.out;
  r = run_cli("sample --model " + kQuickstartConfig + " --out " + out + ".png --conv-algorithm winograd");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("--conv-algorithm: applies to --checkpoint"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(out + ".png"));
}

TEST(CliTrain, ConfigErrorsNameTheKey) {
  auto r = run_cli("train --config " + kQuickstartConfig + " --set train.bogus=1 --out " + fresh_out_dir("err1"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("train.bogus"), std::string::npos) << r.out;
  r = run_cli("train --config " + kQuickstartConfig + " --set process.name=nope --out " + fresh_out_dir("err2"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("nope"), std::string::npos) << r.out;
  r = run_cli("eval --checkpoint /nonexistent/ckpt.gsdiff");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("/nonexistent/ckpt.gsdiff"), std::string::npos) << r.out;
}

TEST(CliTrain, HelpPerCommand) {
  for (std::string c : {"eval", "sample"}) {
    auto r = run_cli(c + " --help");
    EXPECT_EQ(r.rc, 0) << c;
    EXPECT_NE(r.out.find("--checkpoint"), std::string::npos) << r.out;
  }
  auto r = run_cli("train --help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("--resume"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--set"), std::string::npos) << r.out;
}

}  // namespace
