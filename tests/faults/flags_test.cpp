// Every numeric flag of every command, given bad values: exit status 2, a message naming the flag and its range,
// no C++ backtrace; the ranges are in --help; config fields are named the same way.
#include <gtest/gtest.h>

#include <cctype>

#include "faults/faults_util.h"

namespace {

using namespace gsdiff::faults;

// A trained checkpoint for the commands that need one (the only error left is then the flag's).
const std::string& checkpoint() {
  static const std::string path = [] {
    const auto dir = fresh_dir("flags_ckpt");
    auto r = run_shell(tiny_train(dir, 1, "--quiet"));
    EXPECT_EQ(r.rc, 0) << r.out;
    return dir + "/ckpt-00000001.gsdiff";
  }();
  return path;
}

struct Case {
  std::string command, base;  // base: valid arguments
  std::string flag;
  std::vector<std::string> bad;
};

std::vector<Case> cases() {
  const std::string ck = "--checkpoint " + checkpoint();
  const std::string out = " --out " + fs::temp_directory_path().string() + "/gsdiff_flags_unused.png";
  const std::string train = "--config " + gsdiff::testing::kQuickstartConfig + " --out " +
                            fs::temp_directory_path().string() + "/gsdiff_flags_train_unused";
  const std::string bench = "--config " + std::string(GSDIFF_SOURCE_DIR) + "/bench/configs/unet-micro.json";
  const std::vector<std::string> count = {"0", "-3", "abc", "1.5", "99999999999999999999999"};  // integers >= 1
  const std::vector<std::string> count0 = {"-1", "x", "2.5"};                                     // integers >= 0
  const std::vector<std::string> positive = {"0", "-1", "nan", "inf", "x"};                      // numbers > 0
  const std::vector<std::string> unit_open = {"0", "1", "1.5", "-0.1", "nan"};                   // numbers in (0, 1)
  const std::vector<std::string> seed = {"-3", "abc", "1.5"};
  const std::vector<std::string> threads = {"-1", "x", "99999999999"};
  return {
      {"sample", ck + out, "num", count},         {"sample", ck + out, "steps", count},
      {"sample", ck + out, "seed", seed},         {"sample", ck + out, "switch", unit_open},
      {"sample", ck + out, "eta", {"-0.5", "nan", "y"}},
      {"sample", ck + out, "order", {"1", "4", "2.5", "x"}}, {"sample", ck + out, "churn", {"-1", "nan", "x"}},
      {"sample", ck + out, "churn-tmin", {"-1", "x"}},       {"sample", ck + out, "churn-tmax", {"-1", "nan"}},
      {"sample", ck + out, "churn-noise", {"-0.5", "x"}},
      {"sample", ck + out, "snr", positive},      {"sample", ck + out, "corrector-steps", count0},
      {"sample", ck + out, "class", {"-2", "z", "0.5"}},
      {"sample", ck + out, "guidance", {"nan", "inf", "g"}},
      {"sample", ck + out, "threads", threads},
      {"sample", ck + out, "temperature", positive},
      {"sample", ck + out, "top-p", {"0", "1.5", "-0.1", "nan", "p"}},
      {"sample", ck + out, "length", count},      {"sample", ck + out, "block", count},
      {"eval", ck, "limit", count0},              {"eval", ck, "quadrature-tol", positive},
      {"eval", ck, "max-nodes", {"83", "0", "x"}}, {"eval", ck, "quadrature-nodes", count},
      {"eval", ck, "noise-samples", count},       {"eval", ck, "time-samples", count},
      {"eval", ck, "target-stderr", {"-1", "nan", "x"}},
      {"eval", ck, "max-passes", count},          {"eval", ck, "batch-size", count},
      {"eval", ck, "seed", seed},                 {"eval", ck, "threads", threads},
      {"eval", ck, "ode-steps", count},           {"eval", ck, "switch", unit_open},
      {"train", train, "threads", threads},       {"train", train, "dist-timeout", positive},
      {"bench", bench, "steps", count},           {"bench", bench, "warmup", count0},
      {"bench", bench, "batch", count0},          {"bench", bench, "seq-len", count0},
      {"bench", bench, "threads", threads},       {"bench", bench, "sample-calls", {"-2", "x"}},
      {"bench", bench, "seed", seed},
  };
}

TEST(BadFlags, EveryNumericFlagOfEveryCommandIsNamedWithoutBacktrace) {
  int runs = 0;
  for (const auto& c : cases()) {
    for (const auto& v : c.bad) {
      std::vector<std::string> forms = {" --" + c.flag + " " + v};
      if (&v == &c.bad.front()) forms.push_back(" --" + c.flag + "=" + v);  // the = form once per flag
      for (const auto& form : forms) {
        auto r = gsdiff::testing::run_gsdiff(c.command + " " + c.base + form);
        ++runs;
        SCOPED_TRACE("gsdiff " + c.command + form);
        EXPECT_EQ(r.rc, 2) << r.out;
        EXPECT_NE(r.out.find("--" + c.flag + ": expected "), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("got '" + v + "'"), std::string::npos) << r.out;
        EXPECT_FALSE(has_backtrace(r.out)) << r.out;
      }
    }
  }
  std::cout << runs << " bad flag values rejected\n";
}

// The table's base arguments are valid: the same commands with good values of the flags succeed.
TEST(BadFlags, GoodValuesAtTheEdgesAreAccepted) {
  const std::string ck = "--checkpoint " + checkpoint(), dir = fresh_dir("flags_good");
  auto s = gsdiff::testing::run_gsdiff("sample " + ck + " --out " + dir + "/s.png --num 1 --steps 1 --seed 0 --threads 1");
  EXPECT_EQ(s.rc, 0) << s.out;
  auto e = gsdiff::testing::run_gsdiff("eval " + ck + " --limit 2 --batch-size 2 --time-samples 1 --threads 1");
  EXPECT_EQ(e.rc, 0) << e.out;
}

// The two examples: ATen's "negative dimension" backtrace and a silent 100-step default are gone.
TEST(BadFlags, SampleNumNegativeAndStepsZero) {
  const std::string base = "sample --checkpoint " + checkpoint() + " --out /tmp/gsdiff_flags_unused.png";
  auto num = gsdiff::testing::run_gsdiff(base + " --num -3");
  EXPECT_EQ(num.rc, 2);
  EXPECT_NE(num.out.find("--num: expected an integer in [1, 100000000], got '-3'"), std::string::npos) << num.out;
  auto steps = gsdiff::testing::run_gsdiff(base + " --steps 0");
  EXPECT_EQ(steps.rc, 2);
  EXPECT_NE(steps.out.find("--steps: expected an integer in [1, 100000000], got '0'"), std::string::npos) << steps.out;
}

// --help with cxxopts' line wrapping undone (runs of spaces and newlines as one space).
std::string help_of(const std::string& command) {
  const auto out = gsdiff::testing::run_gsdiff(command + " --help").out;
  std::string flat;
  for (char ch : out)
    if (!std::isspace(static_cast<unsigned char>(ch))) flat += ch;
    else if (flat.empty() || flat.back() != ' ') flat += ' ';
  return flat;
}

TEST(BadFlags, HelpStatesRangesAndWhatZeroMeans) {
  auto h = help_of("sample");
  EXPECT_NE(h.find("number of samples (default: the checkpoint's sample.num) (an integer in [1, 100000000])"),
            std::string::npos) << h;
  EXPECT_NE(h.find("intra-op threads (an integer in [0, 65536]; 0 = $GSDIFF_THREADS when set, else all cores)"), std::string::npos) << h;
  EXPECT_NE(help_of("eval").find("score only the first N examples (an integer in [0, 1000000000000]; 0 = all)"),
            std::string::npos);
  auto t = help_of("train");
  EXPECT_NE(t.find("exit with status 75 (interrupted, resumable"), std::string::npos) << t;
  EXPECT_NE(t.find("--dist-timeout arg seconds a rank waits"), std::string::npos) << t;
}

// Config fields a user sets with --set are named by their dotted key, with the expected range or values.
TEST(BadFlags, ConfigFieldsAreNamed) {
  const std::string base = "train --config " + gsdiff::testing::kQuickstartConfig + " --out " + fresh_dir("flags_cfg");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"train.lr=-1", "field 'train.lr' must be a finite number > 0"},
      {"train.optimizer=adam", "field 'train.optimizer' must be one of adamw, sgd, got 'adam'"},
      {"train.log_every=-5", "field 'train.log_every' must be >= 0"},
      {"train.beta2=1", "field 'train.beta2' must be in [0, 1)"},
      {"sample.num=-3", "field 'sample.num' must be >= 0"},
      {"sample.steps=-1", "field 'sample.steps' must be >= 0"},
      {"eval.limit=-1", "field 'eval.limit' must be >= 0"},
      {"debug.fault=explode", "field 'debug.fault' must be one of none, kill, stop"}};
  for (const auto& [set, want] : bad) {
    auto r = gsdiff::testing::run_gsdiff(base + " --set " + set);
    EXPECT_EQ(r.rc, 1) << set << ": " << r.out;
    EXPECT_NE(r.out.find(want), std::string::npos) << set << ": " << r.out;
    EXPECT_FALSE(has_backtrace(r.out)) << r.out;
  }
}

}  // namespace
