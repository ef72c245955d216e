// `gsdiff sample --remask / --eta / --unmask / --remask-loop / --temperature / --top-p / --length --block`: what they do on a tiny
// trained model, the call counts printed, and every misuse named.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "cli_test_util.h"

namespace {

namespace fs = std::filesystem;
using gsdiff::testing::bytes_of;
using gsdiff::testing::run_cli;

std::string cs_dir() {
  static const std::string d = [] {
    auto p = fs::temp_directory_path() / ("gsdiff_cli_sampling_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
  }();
  return d;
}

// A tiny text model of `process` (16 characters, 2 training steps) on a repeated sentence.
std::string cs_train(const std::string& config, const std::string& name, const std::string& extra = "") {
  const std::string corpus = cs_dir() + "/t8.txt";
  {
    std::ofstream f(corpus);
    for (int i = 0; i < 200; ++i) f << "the cat sat on the mat and the dog ran ";
  }
  auto r = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/" + config + " --set data.path=" + corpus +
                   " --set data.train_frac=0.8 --set data.valid_frac=0.9 --set data.seq_len=16 --set data.batch_size=4"
                   " --set model.dim=16 --set model.depth=1 --set model.num_heads=2 --set model.cond_dim=8"
                   " --set train.steps=2 --set train.eval_every=0 --set train.log_every=0 --set sample.num=0 " + extra +
                   " --threads 1 --quiet --out " + cs_dir() + "/" + name);
  EXPECT_EQ(r.rc, 0) << r.out;
  return cs_dir() + "/" + name + "/ckpt-00000002.gsdiff";
}

const std::string& cs_absorbing() {
  static const std::string ck = cs_train("text8-absorbing.json", "absorbing");
  return ck;
}

std::vector<std::string> cs_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> v;
  for (std::string l; std::getline(f, l);) v.push_back(l);
  return v;
}

struct Sampled {
  std::vector<std::string> lines;
  long calls = -1;
  std::string out;
};

// Samples 4 lines with `flags`; each is `len` text8 characters; the printed network-call count is parsed.
Sampled cs_sample(const std::string& flags, const std::string& name, size_t len = 16, size_t num = 4) {
  const auto out = cs_dir() + "/" + name + ".txt";
  auto r = run_cli("sample --checkpoint " + cs_absorbing() + " --num " + std::to_string(num) + " --steps 8 --seed 3 --threads 1 " +
                   flags + " --out " + out);
  EXPECT_EQ(r.rc, 0) << flags << "\n" << r.out;
  Sampled s{cs_lines(out), -1, r.out};
  EXPECT_EQ(s.lines.size(), num) << flags;
  for (const auto& l : s.lines) {
    EXPECT_EQ(l.size(), len) << flags << ": '" << l << "'";
    for (char c : l) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == ' ') << flags << ": '" << l << "'";
  }
  auto pos = r.out.find("network calls ");
  EXPECT_NE(pos, std::string::npos) << r.out;
  if (pos != std::string::npos) s.calls = std::stol(r.out.substr(pos + 14));
  return s;
}

TEST(CliSampling, RemaskingUnmaskOrderAndFiltersRun) {
  for (const std::string f : {"--remask cap --eta 0.1", "--sampler mdlm-cached --remask rescale --eta 0.5", "--remask conf",
                              "--unmask margin", "--sampler mdlm-cached --unmask entropy", "--temperature 0.5 --top-p 0.9",
                              "--sampler tweedie --temperature 2", "--sampler tau-leaping --top-p 0.5"}) {
    auto s = cs_sample(f, "run");
    EXPECT_EQ(s.calls, f.find("mdlm-cached") == std::string::npos ? 8 : s.calls) << f;
    EXPECT_GE(s.calls, 1) << f;
  }
}

// --remask-loop reaches the sampler (ReMDM-loop's law is tested in tests/sample/masked_step_test.cpp): through both
// samplers it writes text, and the same seed with and without the loop gives different files.
TEST(CliSampling, RemaskLoopRuns) {
  cs_sample("--remask cap --eta 0.5 --remask-loop --t-on 0.6 --t-off 0.2", "loop_a");
  cs_sample("--sampler mdlm-cached --remask rescale --eta 0.5 --remask-loop --alpha-on 0.9", "loop_c");
  cs_sample("--remask cap --eta 0.5", "loop_plain");
  EXPECT_NE(bytes_of(cs_dir() + "/loop_a.txt"), bytes_of(cs_dir() + "/loop_plain.txt"));
}

// Greedy tokens (top-p of 1e-9 keeps the favourite only) in MaskGIT's deterministic order leave nothing random: two
// seeds give the same text; the same flags without the filter do not (the 2-step model's law is nearly uniform, so
// a temperature would need to be below its float32 logit differences, ~1e-5, to be greedy: not used here).
TEST(CliSampling, GreedyTokensInConfidenceOrderAreSeedIndependent) {
  auto ga = cs_sample("--unmask max-prob --top-p 0.000000001 --seed 1", "greedy_a");
  auto gb = cs_sample("--unmask max-prob --top-p 0.000000001 --seed 2", "greedy_b");
  EXPECT_EQ(ga.lines, gb.lines);
  auto a = cs_sample("--unmask max-prob --seed 1", "free_a");
  auto b = cs_sample("--unmask max-prob --seed 2", "free_b");
  EXPECT_NE(a.lines, b.lines);
}

// ancestral calls the network once per step; mdlm-cached (a time-independent model) only after a row changed: with
// one row of 16 characters at most 1 + 16 calls of 200.
TEST(CliSampling, MdlmCachedPrintsFewerCalls) {
  auto a = cs_sample("--steps 200", "calls_a", 16, 1);
  auto c = cs_sample("--steps 200 --sampler mdlm-cached", "calls_c", 16, 1);
  EXPECT_EQ(a.calls, 200);
  EXPECT_LE(c.calls, 17);
}

// --length N --block B: N characters per line, a prompt kept at the front; block = length = the model's 16 is the
// plain sampler (the same file for the same seed).
TEST(CliSampling, SemiAutoregressiveBlocks) {
  auto s = cs_sample("--length 50 --block 8 --prompt 'the '", "blocks", 50);
  for (const auto& l : s.lines) EXPECT_EQ(l.substr(0, 4), "the ") << l;
  cs_sample("--length 16 --block 16 --remask cap --eta 0.2", "same_blocks");
  cs_sample("--remask cap --eta 0.2", "same_plain");
  EXPECT_EQ(bytes_of(cs_dir() + "/same_blocks.txt"), bytes_of(cs_dir() + "/same_plain.txt"));
}

struct Bad {
  std::string flags, expect;
  std::string model = "absorbing";
  int rc = 2;  // a usage error; 1: refused by the sampler once the grid is known
};

// A 1-step Gaussian image model (the quickstart config, Fashion-MNIST) for the flags that need a discrete process.
std::string cs_gaussian() {
  auto r = run_cli("train --config " + gsdiff::testing::kQuickstartConfig + " --set data.batch_size=4 --set sample.num=0"
                   " --set train.log_every=0 --set train.eval_every=0 --set train.tensorboard=false"
                   " --set train.checkpoint_every=0 --set train.steps=1 --threads 1 --quiet --out " + cs_dir() + "/gauss");
  EXPECT_EQ(r.rc, 0) << r.out;
  return cs_dir() + "/gauss/ckpt-00000001.gsdiff";
}

TEST(CliSampling, MisuseIsNamedWithTheChoices) {
  const std::string uniform = cs_train("text8-uniform.json", "uniform"), gauss = cs_gaussian();
  const std::vector<Bad> bad = {
      {"--remask loop", "--remask: expected none, cap, rescale or conf, got 'loop'"},
      {"--unmask best", "--unmask: expected random, max-prob, margin or entropy, got 'best'"},
      {"--eta 0.1", "--eta: an option of --sampler ddim or dpm-solver++, not of ancestral --remask none (it is also ReMDM's eta of --remask cap or rescale"},
      {"--remask conf --eta 0.1", "--eta: an option of --sampler ddim or dpm-solver++, not of ancestral --remask conf"},
      {"--sampler tweedie --eta 0.1", "--eta: an option of --sampler ddim or dpm-solver++, not of tweedie"},
      {"--remask cap --eta 1.5", "--eta: with --remask cap expected a number in [0, 1], got '1.5'"},
      {"--remask cap --unmask margin", "--remask cap with --unmask margin"},
      {"--sampler tweedie --remask cap", "--remask: an option of --sampler ancestral or mdlm-cached"},
      {"--sampler euler --unmask margin", "--unmask: an option of --sampler ancestral or mdlm-cached"},
      {"--remask-loop", "--remask-loop: remasks inside the loop, so it needs --remask cap, rescale or conf"},
      {"--t-on 0.5", "--t-on: belongs to --remask-loop"},
      {"--remask cap --eta 0.1 --remask-loop --t-on 0.3 --t-off 0.4", "--t-off: expected a time below --t-on 0.3, got '0.4'"},
      {"--remask cap --remask-loop --alpha-on 1", "--alpha-on: expected a number in (0, 1), got '1'"},
      {"--sampler tweedie --remask-loop", "--remask-loop: an option of --sampler ancestral or mdlm-cached"},
      {"--remask cap --eta 0.1 --remask-loop --t-on 0.52 --t-off 0.5", "the ReMDM loop [t_off, t_on] = [0.500000, 0.520000] holds no step of the 2-step grid", "absorbing", 1},
      {"--length 40", "--length needs --block"},
      {"--block 4", "--block needs --length"},
      {"--length 10 --block 4", "--length: expected at least the model's sequence length 16, got '10'"},
      {"--length 40 --block 20", "--block: expected at most the model's sequence length 16, got '20'"},
      {"--remask cap --eta 0.1", "--remask: needs the absorbing (mask) process; this model's process is uniform", "uniform"},
      {"--unmask margin", "--unmask: needs the absorbing (mask) process", "uniform"},
      {"--temperature 0.5", "--temperature: acts on p(x0 | x_t) of a discrete process; this model's process is gaussian-vp", "gauss"},
      {"--top-p 0.5", "--top-p: acts on p(x0 | x_t) of a discrete process", "gauss"},
      {"--length 40 --block 8", "--length/--block: semi-autoregressive sampling needs a discrete model", "gauss"},
  };
  for (const auto& b : bad) {
    const auto ck = b.model == "uniform" ? uniform : b.model == "gauss" ? gauss : cs_absorbing();
    auto r = run_cli("sample --checkpoint " + ck + " --num 1 --steps 2 --threads 1 " + b.flags + " --out " + cs_dir() + "/bad.txt");
    EXPECT_EQ(r.rc, b.rc) << b.flags << "\n" << r.out;
    EXPECT_NE(r.out.find(b.expect), std::string::npos) << b.flags << "\n" << r.out;
  }
}

}  // namespace
