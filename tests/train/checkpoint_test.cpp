// Checkpoints: envelope round trip, corrupt/truncated files rejected, bit-exact resume, NaN skip.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/registry.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace gsdiff {
namespace {

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_all(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

std::string error_of(const std::string& path) {
  try {
    read_checkpoint_file(path);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

TEST(CheckpointFile, RoundTripAndNoTempLeft) {
  auto dir = testing::fresh_dir("envelope");
  std::string payload(1000, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = char(i * 7);
  write_checkpoint_file(dir + "/a.gsdiff", payload);
  EXPECT_EQ(read_checkpoint_file(dir + "/a.gsdiff"), payload);
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += (void(e), 1);
  EXPECT_EQ(files, 1);  // the temporary file was renamed away
}

TEST(CheckpointFile, BitFlipRejected) {
  auto dir = testing::fresh_dir("bitflip");
  write_checkpoint_file(dir + "/a.gsdiff", std::string(500, 'x'));
  auto bytes = read_all(dir + "/a.gsdiff");
  bytes[300] ^= 0x10;  // one bit in the payload
  write_all(dir + "/a.gsdiff", bytes);
  auto msg = error_of(dir + "/a.gsdiff");
  EXPECT_NE(msg.find("CRC32 mismatch"), std::string::npos) << msg;
  EXPECT_NE(msg.find("a.gsdiff"), std::string::npos) << msg;
}

TEST(CheckpointFile, TruncationAndBadMagicRejected) {
  auto dir = testing::fresh_dir("trunc");
  write_checkpoint_file(dir + "/a.gsdiff", std::string(500, 'x'));
  auto bytes = read_all(dir + "/a.gsdiff");
  write_all(dir + "/a.gsdiff", bytes.substr(0, bytes.size() - 10));
  auto msg = error_of(dir + "/a.gsdiff");
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  write_all(dir + "/a.gsdiff", bytes.substr(0, 10));
  EXPECT_NE(error_of(dir + "/a.gsdiff").find("truncated header"), std::string::npos);
  bytes[0] = 'X';
  write_all(dir + "/a.gsdiff", bytes);
  EXPECT_NE(error_of(dir + "/a.gsdiff").find("bad magic"), std::string::npos);
}

TEST(CheckpointFile, NewestValidSkipsCorruptAndPruneKeepsK) {
  auto dir = testing::fresh_dir("newest");
  for (int s : {1, 2, 3}) write_checkpoint_file(dir + "/" + checkpoint_name(s), std::string(100, char('a' + s)));
  auto bytes = read_all(dir + "/" + checkpoint_name(3));
  bytes[50] ^= 1;
  write_all(dir + "/" + checkpoint_name(3), bytes);
  EXPECT_EQ(newest_valid_checkpoint(dir), dir + "/" + checkpoint_name(2));
  auto removed = prune_checkpoints(dir, 2);
  // The corrupt step-3 file does not take a slot: the two valid ones stay, the corrupt one goes.
  auto left = list_checkpoints(dir);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0], dir + "/" + checkpoint_name(2));
  EXPECT_EQ(left[1], dir + "/" + checkpoint_name(1));
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], dir + "/" + checkpoint_name(3));
}

TEST(CheckpointFile, PruneByValidityAndStepKeepsTheFileJustWritten) {
  auto dir = testing::fresh_dir("prune");
  // Valid 5 and 7, a corrupt 9 (not an envelope at all), and a truncated 6; then step 8 is written.
  for (int s : {5, 7}) write_checkpoint_file(dir + "/" + checkpoint_name(s), std::string(64, char('a' + s)));
  write_all(dir + "/" + checkpoint_name(9), std::string(300, 'z'));
  write_checkpoint_file(dir + "/" + checkpoint_name(6), std::string(64, 'q'));
  auto b = read_all(dir + "/" + checkpoint_name(6));
  write_all(dir + "/" + checkpoint_name(6), b.substr(0, b.size() - 3));
  const auto written = dir + "/" + checkpoint_name(8);
  write_checkpoint_file(written, std::string(64, 'w'));
  prune_checkpoints(dir, 2, written);
  auto left = list_checkpoints(dir);  // newest first
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0], written);
  EXPECT_EQ(left[1], dir + "/" + checkpoint_name(7));  // name order alone would have kept the corrupt 9
  // keep = 1: only the file just written, even with no valid file above it.
  prune_checkpoints(dir, 1, written);
  left = list_checkpoints(dir);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0], written);
  EXPECT_EQ(checkpoint_step(written), 8);
  EXPECT_EQ(checkpoint_step(dir + "/notes.txt"), -1);
}

class TrainerState : public ::testing::Test {
 protected:
  void SetUp() override {
    register_builtins();
    testing::register_test_models();
  }
  Config cfg(int64_t steps) {
    auto j = testing::gmm_config(steps, 32);
    j["train"]["lr_schedule"] = "cosine";
    j["train"]["accumulate"] = 2;
    j["model"]["type"] = "test-mlp";
    return parse_config(j);
  }
  static TrainerEnv env(const std::string& dir, const std::string& resume = "") {
    return testing::quiet_env(dir, resume);
  }
};

std::vector<torch::Tensor> snapshot(Trainer& t);  // every weight, EMA and optimizer tensor (below)

TEST_F(TrainerState, ResumeIsBitExactAcrossTwoInterruptions) {
  std::vector<double> full;
  std::vector<torch::Tensor> full_state;
  {
    Trainer t(cfg(12), env(testing::fresh_dir("resume_full")));
    t.run(12);
    full = t.losses();
    full_state = snapshot(t);
  }
  ASSERT_EQ(full.size(), 12u);
  auto dir = testing::fresh_dir("resume_parts");
  std::vector<double> parts;
  for (int64_t until : {4, 8, 12}) {
    Trainer t(cfg(12), env(dir, "auto"));
    EXPECT_EQ(t.step_count(), until - 4);
    t.run(until);
    parts.insert(parts.end(), t.losses().begin(), t.losses().end());
    if (until == 12) {  // weights, EMA and optimizer state too
      auto state = snapshot(t);
      ASSERT_EQ(state.size(), full_state.size());
      for (size_t i = 0; i < state.size(); ++i) EXPECT_TRUE(torch::equal(state[i], full_state[i])) << "state tensor " << i;
    }
  }
  ASSERT_EQ(parts.size(), 12u);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(full[i], parts[i]) << "step " << i + 1;  // bit for bit
}

TEST_F(TrainerState, ResumeRejectsCorruptCheckpoint) {
  auto dir = testing::fresh_dir("resume_corrupt");
  std::string path;
  {
    Trainer t(cfg(2), env(dir));
    t.run(2);
    path = dir + "/" + checkpoint_name(2);
  }
  auto bytes = read_all(path);
  bytes[bytes.size() / 2] ^= 0x01;
  write_all(path, bytes);
  try {
    Trainer t(cfg(2), env(dir, path));
    FAIL() << "expected the corrupt checkpoint to be rejected";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("CRC32"), std::string::npos) << e.what();
  }
  Trainer fresh(cfg(2), env(dir, "auto"));  // auto skips the corrupt file: nothing valid -> fresh start
  EXPECT_EQ(fresh.step_count(), 0);
}

std::vector<torch::Tensor> snapshot(Trainer& t) {
  std::vector<torch::Tensor> out;
  for (auto& p : t.model()->parameters()) out.push_back(p.detach().clone());
  for (auto& kv : t.ema()->shadow()) out.push_back(kv.second.clone());
  for (auto& m : t.optimizer().exp_avg()) out.push_back(m.clone());
  for (auto& v : t.optimizer().exp_avg_sq()) out.push_back(v.clone());
  out.push_back(torch::tensor(t.optimizer().steps()));
  return out;
}

TEST_F(TrainerState, NanStepLeavesEveryStateUnchanged) {
  auto c = cfg(10);
  c.debug.nan_at_step(4);
  Trainer t(c, env(testing::fresh_dir("nan")));
  t.run(3);
  auto before = snapshot(t);
  auto updates = t.updates();
  auto ema_updates = t.ema()->updates();
  ASSERT_FALSE(t.step());  // step 4: NaN injected, skipped
  EXPECT_TRUE(std::isnan(t.losses().back()));
  EXPECT_EQ(t.skipped(), 1);
  EXPECT_EQ(t.updates(), updates);
  EXPECT_EQ(t.ema()->updates(), ema_updates);
  auto after = snapshot(t);
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i])) << "state tensor " << i;
  EXPECT_TRUE(t.step());  // training goes on
  EXPECT_EQ(t.updates(), updates + 1);
}

TEST_F(TrainerState, ConsecutiveNonFiniteStepsError) {
  auto j = testing::gmm_config(10, 32);
  j["train"]["max_consecutive_skips"] = 3;
  j["train"]["lr"] = 1e30;  // diverges to inf/nan within a few steps
  j["train"]["grad_clip"] = 0.0;
  j["train"]["warmup_steps"] = 0;
  Trainer t(parse_config(j), env(testing::fresh_dir("diverge")));
  try {
    t.run(50);
    FAIL() << "expected divergence to be reported";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("consecutive steps with a non-finite"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gsdiff
