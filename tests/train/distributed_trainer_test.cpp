// The whole Trainer data parallel: 2 Gloo ranks on loopback train the one-process run (weights, EMA, metrics).
#include <gtest/gtest.h>

#include "distributed_test_util.h"

using namespace distributed_testing;

// The whole Trainer: 2 ranks at batch 16 (accumulate A) train the same run as one process at batch 16 with
// accumulate 2A, i.e. the combined batch of 32 per micro-step, same examples, same t / noise / dropout draws:
// raw weights, EMA weights and rank 1's copy agree to float summation order. A wrong reference (one process
// on rank 0's half alone) is far outside that tolerance, so the check can fail.
class TrainerDistributed : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainerDistributed, TwoRanksTrainTheOneProcessRun) {
  const std::string mode = GetParam();
  gsdiff::register_builtins();
  fs::path dir = fresh_dir(mode);
  bool timed_out = false;
  auto kids = run_workers(2, mode, dir, std::chrono::seconds(120), &timed_out);
  ASSERT_FALSE(timed_out) << read_file(kids[0].err) << read_file(kids[1].err);
  for (auto& k : kids)
    ASSERT_TRUE(WIFEXITED(k.status) && WEXITSTATUS(k.status) == 0) << k.err << ":\n" << read_file(k.err);

  const int64_t ranks_accumulate = mode == "trainer-a2" ? 2 : 1;
  const fs::path one = dir / "one", half = dir / "half", twice = dir / "twice";
  gsdiff::Trainer(trainer_config(16, 2 * ranks_accumulate, mode), trainer_env(one)).run();
  gsdiff::Trainer(trainer_config(16, ranks_accumulate, mode), trainer_env(half)).run();

  auto [dist_raw, dist_ema] = checkpoint_weights(dir / "run");  // rank 0's checkpoint
  auto [one_raw, one_ema] = checkpoint_weights(one);
  auto [half_raw, half_ema] = checkpoint_weights(half);
  std::vector<torch::Tensor> rank1;
  torch::load(rank1, (dir / "params1.pt").string());
  const double tol = 2e-5;
  const double d_raw = max_abs_diff(dist_raw, one_raw), d_ema = max_abs_diff(dist_ema, one_ema);
  const double d_ranks = max_abs_diff(rank1, dist_raw), d_wrong = max_abs_diff(half_raw, one_raw);
  std::cout << mode << ": max |2 ranks - 1 process| raw " << d_raw << ", EMA " << d_ema << "; rank 1 vs rank 0 "
            << d_ranks << "; one rank's half alone vs 1 process " << d_wrong << "\n";
  EXPECT_LT(d_raw, tol);
  EXPECT_LT(d_ema, tol);
  EXPECT_LT(d_ranks, tol);
  EXPECT_GT(d_wrong, 100 * tol);
  if (mode == "trainer-sgd") {  // a gradient twice too large (a sum over ranks, not the mean) is far outside tol
    gsdiff::Trainer(trainer_config(16, 2 * ranks_accumulate, mode, 2.0), trainer_env(twice)).run();
    const double d_scale = max_abs_diff(checkpoint_weights(twice).first, one_raw);
    std::cout << mode << ": a 2x gradient scale moves the weights by " << d_scale << "; losses";
    for (const auto& [step, j] : metric_lines(one / "metrics.jsonl")) std::cout << " " << j["loss"].get<double>();
    std::cout << "\n";
    EXPECT_GT(d_scale, 100 * tol);
  }
  if (mode == "trainer-learned-schedule") {  // the schedule's values: 2 ranks = 1 process, and not one rank's half
    auto values = [](const fs::path& d) {
      auto r = gsdiff::restore_for_inference(gsdiff::newest_valid_checkpoint(d.string()), false, torch::kCPU);
      return torch::tensor(r.process->options_json().at("schedule_values").get<std::vector<double>>());
    };
    const double d_sched = (values(dir / "run") - values(one)).abs().max().item<double>();
    const double d_half = (values(half) - values(one)).abs().max().item<double>();
    std::cout << mode << ": schedule values, max |2 ranks - 1 process| " << d_sched << ", half alone " << d_half << "\n";
    EXPECT_LT(d_sched, tol);
    EXPECT_GT(d_half, 100 * tol);
  }
  expect_global_metrics(dir / "run" / "metrics.jsonl", one / "metrics.jsonl", half / "metrics.jsonl", mode);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Modes, TrainerDistributed,
                         ::testing::Values("trainer-a1", "trainer-a2", "trainer-resume", "trainer-sgd",
                                           "trainer-loss-aware", "trainer-learned-schedule"));

