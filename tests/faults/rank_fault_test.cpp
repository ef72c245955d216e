// A rank that dies (SIGKILL) or hangs (SIGSTOP) in the middle of a step's backward pass (debug.fault): the other
// rank stops within the configured --dist-timeout with an error naming the rank at fault, and a restarted job
// resumes from the last checkpoint and trains the same losses as an uninterrupted run.
#include <gtest/gtest.h>

#include "faults/faults_util.h"
#include "train/checkpoint.h"

namespace {

using namespace gsdiff::faults;

constexpr int64_t kRankSteps = 12;

std::string faulty(int rank, const std::string& fault, int64_t step) {
  return " --set debug.fault=" + fault + " --set debug.fault_rank=" + std::to_string(rank) +
         " --set debug.fault_step=" + std::to_string(step);
}

// The process state letter from /proc/<pid>/stat ('T' = stopped).
char proc_state(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(f, s);
  auto p = s.rfind(')');
  return p == std::string::npos || p + 2 >= s.size() ? '?' : s[p + 2];
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Pair {
  Child r0, r1;
};

Pair start_pair(const std::string& dir, const std::string& extra) {
  const int port = free_port();
  return {spawn_rank(tiny_train(dir, kRankSteps, extra), dir + ".r0.log", 0, 2, port),
          spawn_rank(tiny_train(dir, kRankSteps, extra), dir + ".r1.log", 1, 2, port)};
}

// Rank `dead` SIGKILLed mid-backward at step 7 (checkpoints every 3 steps): the survivor fails fast naming it; the
// restarted job resumes from ckpt-6 and every step's loss equals the uninterrupted 2-rank run's.
void killed_rank_case(int dead) {
  const std::string every = " --set train.checkpoint_every=3 --dist-timeout 30";
  const auto ref_dir = fresh_dir("rank_ref_" + std::to_string(dead));
  auto ref = run_shell(kLaunch2 + tiny_train(ref_dir, kRankSteps, "--quiet" + every));
  ASSERT_EQ(ref.rc, 0) << ref.out;

  const auto dir = fresh_dir("rank_kill_" + std::to_string(dead));
  auto p = start_pair(dir, every + faulty(dead, "kill", 7));
  Child& victim = dead == 0 ? p.r0 : p.r1;
  Child& survivor = dead == 0 ? p.r1 : p.r0;
  ASSERT_TRUE(wait_for_exit(victim, 90)) << bytes_of(victim.log);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(WIFSIGNALED(victim.status) && WTERMSIG(victim.status) == SIGKILL) << bytes_of(victim.log);
  const bool exited = wait_for_exit(survivor, 30);
  const double secs = seconds_since(t0);
  if (!exited) kill_and_reap(survivor);
  const auto log = bytes_of(survivor.log);
  ASSERT_TRUE(exited) << "the survivor hung:\n" << log;
  std::cout << "rank " << dead << " killed: rank " << 1 - dead << " stopped " << secs << " s later: "
            << log.substr(log.find("error:")) << std::flush;
  EXPECT_EQ(exit_code(survivor), 1) << log;
  EXPECT_NE(log.find("distributed:"), std::string::npos) << log;
  if (dead == 1) EXPECT_NE(log.find("rank 1 stopped responding"), std::string::npos) << log;
  else EXPECT_NE(log.find("rank 0, host of the rendezvous store"), std::string::npos) << log;
  EXPECT_FALSE(has_backtrace(log)) << log;
  EXPECT_LT(secs, 30.0);
  ASSERT_EQ(gsdiff::newest_valid_checkpoint(dir), dir + "/ckpt-00000006.gsdiff");

  auto re = run_shell(kLaunch2 + tiny_train(dir, kRankSteps, "--resume auto --quiet" + every));
  ASSERT_EQ(re.rc, 0) << re.out;
  EXPECT_EQ(compare_losses(train_lines(dir + "/metrics.jsonl"), train_lines(ref_dir + "/metrics.jsonl")), "");
  fs::remove_all(dir);
  fs::remove_all(ref_dir);
}

TEST(RankFault, KilledRankIsNamedAndTheLastCheckpointResumes) { killed_rank_case(1); }
TEST(RankFault, KilledRankZeroIsNamedAsTheStoreHost) { killed_rank_case(0); }

// Rank 1 stops itself (SIGSTOP) mid-backward: rank 0 waits --dist-timeout 5 s, then stops with an error naming
// rank 1 as silent (plus the ~1.5 s the naming takes).
TEST(RankFault, HangingRankIsNamedWithinTheTimeout) {
  const auto dir = fresh_dir("rank_hang");
  auto p = start_pair(dir, " --dist-timeout 5" + faulty(1, "stop", 4));
  ASSERT_TRUE(wait_until([&] { return proc_state(p.r1.pid) == 'T'; }, 90)) << bytes_of(p.r1.log);
  const auto t0 = std::chrono::steady_clock::now();
  const bool exited = wait_for_exit(p.r0, 30);
  const double secs = seconds_since(t0);
  if (!exited) kill_and_reap(p.r0);
  kill_and_reap(p.r1);
  const auto log = bytes_of(p.r0.log);
  ASSERT_TRUE(exited) << "rank 0 hung:\n" << log;
  std::cout << "rank 1 stopped: rank 0 stopped " << secs << " s later: " << log.substr(log.find("error:")) << std::flush;
  EXPECT_EQ(exit_code(p.r0), 1) << log;
  EXPECT_NE(log.find("timeout 5 s"), std::string::npos) << log;
  EXPECT_NE(log.find("rank 1 stopped responding"), std::string::npos) << log;
  EXPECT_FALSE(has_backtrace(log)) << log;
  EXPECT_GT(secs, 4.0) << "rank 0 gave up before the timeout";
  EXPECT_LT(secs, 5.0 + 1.5 + 3.0) << "timeout + naming + 3 s of slack";
  fs::remove_all(dir);
}

}  // namespace
