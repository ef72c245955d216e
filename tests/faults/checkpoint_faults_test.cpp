// Checkpoints under kill -9 and corruption: SIGKILL at random moments of a run that checkpoints every step leaves
// no unreadable checkpoint and the run resumes after every kill; random bit flips, truncations, overwrites and
// insertions are all rejected by the envelope (length + CRC32) before torch::load sees a byte, and --resume auto
// falls back to the previous valid checkpoint.
#include <gtest/gtest.h>

#include <random>
#include <regex>

#include "faults/faults_util.h"
#include "train/checkpoint.h"

namespace {

using namespace gsdiff::faults;

int64_t newest_step(const std::string& dir) {
  auto c = gsdiff::list_checkpoints(dir);
  return c.empty() ? -1 : gsdiff::checkpoint_step(c[0]);
}

bool temp_file_in(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(".ckpt-", 0) == 0) return true;
  return false;
}

// Trials: start (or resume) a run that checkpoints every step and wait for its next checkpoint; then SIGKILL it
// either at a random moment 0..40 ms later (odd trials) or as soon as a checkpoint's temporary file appears (even
// trials: inside a write, between its creation and its rename). After each kill every ckpt-*.gsdiff must verify;
// a kill that left a temporary file landed inside a write. The next trial resumes from what is left.
TEST(KillDuringCheckpoint, NoUnreadableCheckpointAndResumeAfterEveryKill) {
  constexpr int kTrials = 30;
  const auto dir = fresh_dir("kill9");
  const std::string every = "--set train.checkpoint_every=1 --set train.keep_checkpoints=3 --quiet";
  std::mt19937 rng(12345);
  int checked = 0, unreadable = 0, mid_write = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    const int64_t before = newest_step(dir);
    auto c = spawn(tiny_train(dir, 100000, every + (trial ? " --resume auto" : "")), dir + ".log");
    ASSERT_TRUE(wait_until([&] { return newest_step(dir) > before; }, 60)) << bytes_of(c.log);
    if (trial % 2 == 0) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!temp_file_in(dir) && std::chrono::steady_clock::now() < until) {
      }
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 40000)(rng)));
    }
    ::kill(c.pid, SIGKILL);
    ::waitpid(c.pid, &c.status, 0);
    ASSERT_TRUE(WIFSIGNALED(c.status)) << "the run ended before the kill: " << bytes_of(c.log);
    for (const auto& e : fs::directory_iterator(dir)) {
      const auto name = e.path().filename().string();
      if (name.rfind(".ckpt-", 0) == 0) ++mid_write;
      if (name.rfind("ckpt-", 0) != 0) continue;
      ++checked;
      try {
        gsdiff::read_checkpoint_file(e.path().string());
      } catch (const gsdiff::CheckpointError& err) {
        ++unreadable;
        ADD_FAILURE() << err.what();
      }
    }
  }
  std::cout << kTrials << " kill -9: " << checked << " checkpoint files checked, " << unreadable << " unreadable, "
            << mid_write << " kills landed inside a write (temporary file left)\n";
  EXPECT_EQ(unreadable, 0);
  auto fin = run_shell(tiny_train(dir, newest_step(dir) + 2, "--resume auto"));
  ASSERT_EQ(fin.rc, 0) << fin.out;
  EXPECT_NE(fin.out.find("resumed from"), std::string::npos) << fin.out;
  fs::remove_all(dir);
}

enum class Damage { BitFlips, Truncation, Overwrite, Insertion };

std::string damage(const std::string& good, Damage kind, std::mt19937& rng) {
  auto pos = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  auto byte = [&] { return char(std::uniform_int_distribution<int>(0, 255)(rng)); };
  std::string b = good;
  switch (kind) {
    case Damage::BitFlips:
      for (int k = std::uniform_int_distribution<int>(1, 16)(rng); k > 0; --k) b[pos(b.size())] ^= char(1 << pos(8));
      break;
    case Damage::Truncation:
      b.resize(pos(b.size()));
      break;
    case Damage::Overwrite: {
      const size_t at = pos(b.size()), n = std::min(b.size() - at, size_t(1 + pos(64)));
      for (size_t i = 0; i < n; ++i) b[at + i] = byte();
      break;
    }
    case Damage::Insertion: {
      std::string ins(1 + pos(64), '\0');
      for (auto& ch : ins) ch = byte();
      b.insert(pos(b.size() + 1), ins);
      break;
    }
  }
  return b;
}

// 300 damaged copies of a real checkpoint (75 of each kind, as the newest file beside a valid older one): the
// envelope rejects every changed one, and newest_valid_checkpoint (what --resume auto uses) picks the older one.
// One of each kind goes through the CLI: `gsdiff sample` names the file without a backtrace, and
// `gsdiff train --resume auto` resumes from the older checkpoint and finishes.
TEST(CorruptCheckpoint, EveryDamageIsRejectedBeforeLoadingAndResumeFallsBack) {
  const auto dir = fresh_dir("corrupt");
  auto first = run_shell(tiny_train(dir, 4, "--set train.checkpoint_every=2 --quiet"));
  ASSERT_EQ(first.rc, 0) << first.out;
  const std::string older = dir + "/ckpt-00000002.gsdiff", newest = dir + "/ckpt-00000004.gsdiff";
  const std::string good = bytes_of(newest);
  ASSERT_GT(good.size(), 1000u);
  std::mt19937 rng(2026);
  int rejected = 0, unchanged = 0, total = 0;
  for (Damage kind : {Damage::BitFlips, Damage::Truncation, Damage::Overwrite, Damage::Insertion}) {
    for (int i = 0; i < 75; ++i, ++total) {
      const std::string bad = damage(good, kind, rng);
      if (bad == good) {  // an overwrite with the same bytes: nothing to reject
        ++unchanged;
        continue;
      }
      std::ofstream(newest, std::ios::binary | std::ios::trunc) << bad;
      try {
        gsdiff::read_checkpoint_file(newest);
        ADD_FAILURE() << "damage kind " << int(kind) << " trial " << i << " was accepted";
      } catch (const gsdiff::CheckpointError&) {
        ++rejected;
      }
      EXPECT_EQ(gsdiff::newest_valid_checkpoint(dir), older);
      if (i == 0) {  // through the CLI
        auto s = run_shell(std::string(GSDIFF_CLI) + " sample --checkpoint " + newest + " --out " + dir + "/s.png --num 1");
        EXPECT_EQ(s.rc, 1) << s.out;
        EXPECT_NE(s.out.find("checkpoint '" + newest + "'"), std::string::npos) << s.out;
        EXPECT_FALSE(has_backtrace(s.out)) << s.out;
        const auto work = dir + "_resume";
        fs::remove_all(work);
        fs::create_directories(work);
        fs::copy_file(older, work + "/ckpt-00000002.gsdiff");
        std::ofstream(work + "/ckpt-00000004.gsdiff", std::ios::binary) << bad;
        auto re = run_shell(tiny_train(work, 6, "--resume auto"));
        EXPECT_EQ(re.rc, 0) << re.out;
        EXPECT_NE(re.out.find("resumed from " + work + "/ckpt-00000002.gsdiff at step 2"), std::string::npos) << re.out;
        fs::remove_all(work);
      }
    }
  }
  std::cout << total << " damaged checkpoints: " << rejected << " rejected before loading, " << unchanged
            << " left unchanged by the damage\n";
  EXPECT_EQ(rejected + unchanged, total);
  EXPECT_LE(unchanged, 3);
  fs::remove_all(dir);
}

}  // namespace
