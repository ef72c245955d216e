// configs/text8-gaussian end to end through the CLI: train, eval in bits/char, sample text (ancestral, DDIM).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "tools/cli_test_util.h"

namespace {

using gsdiff::testing::run_cli;

nlohmann::json last_json_line(const std::string& out) {
  nlohmann::json j;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] == '{') j = nlohmann::json::parse(line, nullptr, false);
  return j;
}

// Every line of a text sample: exactly `len` characters from a-z and space.
void expect_text8_lines(const std::string& path, int64_t lines, size_t len) {
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  int64_t n = 0;
  for (std::string line; std::getline(in, line); ++n) {
    EXPECT_EQ(line.size(), len) << path << " line " << n << ": '" << line << "'";
    for (char c : line) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == ' ') << path << ": '" << line << "'";
  }
  EXPECT_EQ(n, lines) << path;
}

TEST(CliText8Gaussian, TrainEvalInBitsPerCharAndSampleText) {
  auto d = std::filesystem::temp_directory_path() / ("gsdiff_cli_text8_gaussian_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  const std::string dir = d.string(), corpus = dir + "/t8.txt";
  {
    std::ofstream f(corpus);
    for (int i = 0; i < 400; ++i) f << "the quick brown fox jumps over the lazy dog and " << (i % 2 ? "runs " : "sleeps ");
  }
  const std::string data = " --set data.path=" + corpus + " --set data.train_frac=0.8 --set data.valid_frac=0.9"
                           " --set data.seq_len=32 --set data.batch_size=8";
  auto tr = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/text8-gaussian.json" + data +
                    " --set model.dim=32 --set model.depth=1 --set model.num_heads=2 --set model.cond_dim=16"
                    " --set train.steps=20 --set train.warmup_steps=2 --set train.log_every=0"
                    " --set train.checkpoint_every=20 --set train.ema_decay=0 --set sample.num=2 --set sample.steps=5"
                    " --threads 1 --quiet --out " + dir + "/run");
  ASSERT_EQ(tr.rc, 0) << tr.out;
  const std::string ck = dir + "/run/ckpt-00000020.gsdiff";

  auto ev = run_cli("eval --checkpoint " + ck + " --limit 16 --threads 1");
  ASSERT_EQ(ev.rc, 0) << ev.out;
  auto j = last_json_line(ev.out);
  EXPECT_EQ(j.value("unit", std::string()), "bits/char") << ev.out;
  EXPECT_EQ(j.value("dims", 0.0), 32.0) << "bits per character: nats / (L ln 2) with L = seq_len, not L x d";
  EXPECT_EQ(j.value("estimate", std::string()), "monte-carlo");
  EXPECT_NEAR(j.value("bound", 0.0), j.value("nats_per_example", 0.0) / (32.0 * std::log(2.0)), 1e-9);
  EXPECT_GT(j.value("stderr", 0.0), 0.0);

  auto sa = run_cli("sample --checkpoint " + ck + " --num 3 --steps 10 --threads 1 --out " + dir + "/a.txt");
  ASSERT_EQ(sa.rc, 0) << sa.out;
  expect_text8_lines(dir + "/a.txt", 3, 32);
  auto sd = run_cli("sample --checkpoint " + ck + " --sampler ddim --num 2 --steps 10 --threads 1 --out " + dir + "/b.txt");
  ASSERT_EQ(sd.rc, 0) << sd.out;
  expect_text8_lines(dir + "/b.txt", 2, 32);
  std::filesystem::remove_all(d);
}

}  // namespace
