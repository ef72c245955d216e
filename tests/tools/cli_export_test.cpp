// gsdiff export, sample --model / --sampler / --low-noise-checkpoint, eval --ode / --switch, end to end.
#include <gtest/gtest.h>

#include "tools/cli_test_util.h"
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

namespace {

using gsdiff::testing::Run;
using gsdiff::testing::run_cli;

// The last line that parses as a JSON object.
nlohmann::json last_json(const std::string& out) {
  nlohmann::json j;
  size_t start = 0;
  while (start < out.size()) {
    auto end = out.find('\n', start);
    auto line = out.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!line.empty() && line[0] == '{') j = nlohmann::json::parse(line, nullptr, false);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return j;
}

TEST(CliExport, ExportSampleFromTheExportSwitchAndOde) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "no Fashion-MNIST";
  auto d = std::filesystem::temp_directory_path() / ("gsdiff_cli_export_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  const std::string out = d.string();
  auto tr = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/quickstart.json --set train.steps=2"
                " --set data.batch_size=4 --set sample.num=2 --set sample.steps=2 --threads 1 --quiet --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  const std::string ck = out + "/ckpt-00000002.gsdiff";
  auto ex = run_cli("export --checkpoint " + ck + " --ema --out " + out + "/m.pt");
  ASSERT_EQ(ex.rc, 0) << ex.out;
  auto sm = run_cli("sample --model " + out + "/m.pt --sampler dpm-solver++ --steps 3 --num 2 --threads 1 --out " + out + "/a.png");
  EXPECT_EQ(sm.rc, 0) << sm.out;
  EXPECT_TRUE(std::filesystem::exists(out + "/a.png"));
  auto sw = run_cli("sample --checkpoint " + ck + " --low-noise-checkpoint " + ck + " --switch 0.3 --sampler heun --steps 3"
                " --num 2 --threads 1 --out " + out + "/b.png");
  EXPECT_EQ(sw.rc, 0) << sw.out;
  EXPECT_TRUE(std::filesystem::exists(out + "/b.png"));
  auto bad = run_cli("sample --checkpoint " + ck + " --sampler nope --out " + out + "/c.png");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("tau-leaping"), std::string::npos) << bad.out;  // lists the known samplers
  auto ode = run_cli("eval --checkpoint " + ck + " --ode --ode-steps 2 --limit 2 --batch-size 2 --threads 1");
  ASSERT_EQ(ode.rc, 0) << ode.out;
  auto j = last_json(ode.out);
  EXPECT_GT(j.value("bound", 0.0), 7.0) << ode.out;  // bits/dim of 8-bit data include log2(128) = 7
  // Each field is named for what it is (no "monte-carlo" estimate, no time_samples holding ODE steps).
  EXPECT_EQ(j.value("estimate", ""), "probability-flow-ode") << ode.out;
  EXPECT_EQ(j.value("ode_steps", 0), 2) << ode.out;
  EXPECT_EQ(j.value("ode_integrator", ""), "rk4") << ode.out;
  EXPECT_EQ(j.value("trace_estimator", ""), "hutchinson-rademacher") << ode.out;
  EXPECT_EQ(j.value("trace_samples", 0), 1) << ode.out;
  EXPECT_FALSE(j.contains("time_samples")) << ode.out;
  EXPECT_NE(j.value("dequantization", "none"), "none") << ode.out;
  auto es = run_cli("eval --checkpoint " + ck + " --low-noise-checkpoint " + ck + " --switch 0.4 --limit 2 --batch-size 2 --threads 1");
  ASSERT_EQ(es.rc, 0) << es.out;
  EXPECT_EQ(last_json(es.out).value("switch", 0.0), 0.4);
  std::filesystem::remove_all(d);
}

// A self-conditioned text model (model.self_condition): `gsdiff export` writes forward(x_t, t, estimate), and
// `gsdiff sample --model` feeds each call's p(x0 | x_t) to the next as sampling from the checkpoint does: the same
// seed gives the same text, character for character (tokens: no float tolerance in the comparison).
TEST(CliExport, SelfConditionedExportSamplesAsTheCheckpoint) {
  if (gsdiff::testing::gcide_text8().empty()) GTEST_SKIP() << "no GCIDE text (dict-gcide)";
  const std::string out = gsdiff::testing::fresh_out_dir("cli_export_sc");
  auto tr = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/text8-absorbing.json --set train.steps=3"
                    " --set model.self_condition=true --set model.dim=32 --set model.depth=1 --set model.num_heads=2"
                    " --set model.cond_dim=16 --set model.dropout=0.0 --set data.seq_len=16 --set data.batch_size=4"
                    " --set data.path=" + gsdiff::testing::gcide_text8() + " --set data.train_frac=0.9 --set data.valid_frac=0.95"
                    " --set train.ema_decay=0 --set sample.num=0 --set train.checkpoint_every=0 --set train.log_every=1"
                    " --set train.tensorboard=false --threads 1 --quiet --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  const std::string ck = out + "/ckpt-00000003.gsdiff";
  auto ex = run_cli("export --checkpoint " + ck + " --out " + out + "/m.pt");
  ASSERT_EQ(ex.rc, 0) << ex.out;
  const std::string common = " --sampler ancestral --steps 12 --num 4 --seed 3 --threads 1 --out ";
  auto a = run_cli("sample --model " + out + "/m.pt" + common + out + "/a.txt");
  ASSERT_EQ(a.rc, 0) << a.out;
  auto b = run_cli("sample --checkpoint " + ck + " --no-ema" + common + out + "/b.txt");
  ASSERT_EQ(b.rc, 0) << b.out;
  const auto ta = gsdiff::testing::bytes_of(out + "/a.txt"), tb = gsdiff::testing::bytes_of(out + "/b.txt");
  EXPECT_EQ(std::count(ta.begin(), ta.end(), '\n'), 4) << ta;
  EXPECT_EQ(ta, tb);
  std::filesystem::remove_all(out);
}

}  // namespace

// A file argument that is a directory, missing or unreadable: one error naming the flag and the path, no backtrace.
TEST(CliExport, FileArgumentsThatAreNotReadableFilesAreNamed) {
  auto dir = gsdiff::testing::fresh_out_dir("cli_bad_files");
  for (const auto& [cmd, flag] : std::vector<std::pair<std::string, std::string>>{
           {"export --checkpoint " + dir + " --out " + dir + "/m.pt", "--checkpoint"},
           {"export --checkpoint " + dir + "/missing.gsdiff --out " + dir + "/m.pt", "--checkpoint"},
           {"eval --checkpoint " + dir, "--checkpoint"},
           {"sample --checkpoint " + dir + " --out " + dir + "/s.png", "--checkpoint"},
           {"sample --model " + dir + " --out " + dir + "/s.png", "--model"},
           {"train --config " + dir, "--config"},
           {"info --config " + dir + "/none.json", "--config"}}) {
    auto r = run_cli(cmd);
    EXPECT_EQ(r.rc, 1) << cmd << "\n" << r.out;
    EXPECT_NE(r.out.find(flag + " '" + dir), std::string::npos) << cmd << "\n" << r.out;
    EXPECT_EQ(r.out.find("frame #"), std::string::npos) << cmd << "\n" << r.out;
    EXPECT_EQ(r.out.find("basic_filebuf"), std::string::npos) << cmd << "\n" << r.out;
  }
}
