// The training loop: AdamW, LR warmup/cosine, clipping, EMA, accumulation, NaN skips, resumable checkpoints.
#pragma once
#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/file_io.h"
#include "core/process.h"
#include "data/loader.h"
#include "models/denoiser.h"
#include "train/config.h"
#include "train/ema.h"
#include "train/evaluate.h"
#include "train/flat_params.h"
#include "train/fused_adamw.h"
#include "train/objectives.h"
#include "train/process_params.h"

namespace gsdiff {

namespace dist {
class ProcessGroup;
class GradSync;
}  // namespace dist
namespace tb {
class EventWriter;
}  // namespace tb
class ProgressBar;

struct TrainerEnv {
  std::string out_dir = "out";
  std::string resume;  // "" (fresh), "auto" (newest valid checkpoint in out_dir, if any) or a path
  torch::Device device = torch::kCPU;
  bool verbose = true;  // progress on stderr: a \r-updated bar on a terminal, else periodic lines
  // Data parallel (train/distributed.h): null = one process. With a group, each rank reads its own share
  // of every epoch, gradients are averaged across ranks before clipping, and only rank 0 writes
  // checkpoints, metrics, config.json and samples (and prints progress).
  std::shared_ptr<dist::ProcessGroup> dist;
};

// A process + model built from a config (shared by train, eval and sample).
std::unique_ptr<Process> build_process(const Config& cfg);
DenoiserNet build_model(const Config& cfg);

// A trained model restored from a checkpoint for eval / sampling (eval mode, on `device`).
struct Restored {
  Config config;
  std::unique_ptr<Process> process;
  DenoiserNet model{nullptr};
  int64_t step = 0;
  bool used_ema = false;
};
Restored restore_for_inference(const std::string& path, bool use_ema, const torch::Device& device);

class Trainer {
 public:
  Trainer(Config cfg, TrainerEnv env);
  ~Trainer();

  // Trains until step `until` (default train.steps), then writes a checkpoint. Stops early, after the current
  // step and with a checkpoint, when stop_requested() is set (the CLI's SIGTERM / SIGINT / SIGUSR1 handler); under
  // data parallel the request travels in the step's gradient all-reduce, so every rank stops at the same step.
  void run(int64_t until = -1);
  // The last run() stopped early on a stop request (on this or, data parallel, any rank).
  bool interrupted() const { return stop_; }
  // One optimizer iteration (accumulate micro-batches). False when skipped for a non-finite loss/grad.
  bool step();
  void check_out_dir(const std::string& resumed) const;  // one run per --out (trainer.cpp)
  std::string save_checkpoint();  // out_dir/ckpt-<step>.gsdiff; prunes to train.keep_checkpoints
  void load_checkpoint(const std::string& path);

  int64_t step_count() const { return step_; }
  int64_t updates() const { return updates_; }
  int64_t skipped() const { return skipped_; }
  const std::vector<double>& losses() const { return losses_; }  // per iteration since construction
  double lr_at(int64_t update) const;
  const Config& config() const { return cfg_; }
  const Process& process() const { return *process_; }
  DenoiserNet& model() { return model_; }
  Ema* ema() { return ema_.get(); }
  FusedAdamW& optimizer();  // train.optimizer = adamw only (sgd keeps no state)
  FlatParams& flat_params() { return *flat_; }  // the model's parameters and gradients as flat buffers
  torch::Generator& generator() { return gen_; }

  // Called every train.sample_every steps and at the end of run() (the CLI writes a sample grid), with the EMA
  // weights in the model when sample.ema and EMA is on (the raw weights are restored bit for bit afterwards).
  std::function<void(Trainer&)> on_sample;
  // The validation bound on eval_data (run() calls it every train.eval_every steps), with the EMA weights when
  // eval.ema and EMA is on; written to metrics.jsonl and TensorBoard (rank 0).
  BoundResult validate();
  // Runs f with the EMA weights swapped into model() when `use` and EMA is on; restores the raw weights after.
  void with_ema_weights(bool use, const std::function<void()>& f);
  // Rank 0's TensorBoard writer (<out>/tb), or null (train.tensorboard = false, other ranks).
  tb::EventWriter* tensorboard() { return tb_.get(); }
  // Set (async-signal-safe: a lock-free atomic) by a signal handler to ask for a stop after the current step.
  static std::atomic<bool>& stop_requested();
  int rank() const;
  int world() const;
  bool is_main() const { return rank() == 0; }  // rank 0: the one that writes files
  const LossAwareTimes* loss_aware() const { return loss_aware_.get(); }  // null unless loss-aware

 private:
  // One step's device-side sums over its micro-batches ([] float64: loss, bound bits and their squares) and counts.
  struct StepSums {
    torch::Tensor loss, bits, bits_sq;
    double examples = 0;
    int64_t bits_n = 0;
  };
  // The same on the host after the gradient all-reduce (the global batch's), with the gradient norm before clipping.
  struct StepFigures {
    double loss, bits, bits_sq, examples, grad_norm;
    int64_t bits_n;
  };
  StepSums forward_backward();                         // phases 1-3 of step()
  StepFigures reduce_gradients(const StepSums& sums);  // phase 4: all-reduce, one host sync, clip
  void skip_nonfinite(const StepFigures& f);           // a non-finite step: no update, a diagnosis, maybe divergence
  double update();                                     // phase 5: the optimizer and EMA; returns the learning rate
  void record(const StepFigures& f, double lr, double seconds);  // phase 6
  void log(double loss, double grad_norm, double lr, double examples, double seconds);  // window: bits_* below
  void open_records();  // rank 0: metrics.jsonl, config.json, TensorBoard, the progress bar (trainer_record.cpp)
  void progress(double loss, double bits, double examples);  // one step on the progress bar, if shown
  void progress_clear();  // erases the bar line before other output
  bool stopping() const;  // one process: stop_requested(); data parallel: the step's agreed stop_
  // Data parallel: the step's statistics and this rank's stop request into the gradient all-reduce's header.
  void write_sync_header(const torch::Tensor& loss, const torch::Tensor& bits, const torch::Tensor& bits_sq,
                         int64_t bits_n, double examples);
  // objective.time_sampling loss-aware: folds the step's terms (all ranks') into the sampler, or drops them.
  void fold_loss_aware(bool finite);
  void inject_fault();  // debug.fault at debug.fault_step (tests)
  void log_last();      // the window since the last metrics line, at the run's last step
  void seed_micro_batch(const data::Batch& batch);  // trainer.cpp: the generators from (seed, epoch, global batch)
  ObjectiveResult micro_objective(const data::Batch& batch);  // seeded loss of one micro-batch (with graph)
  DenoiseFn train_denoise_fn(const torch::Tensor& y);  // the network for one micro-batch (self-conditioning)
  void check_classifier_run() const;                   // objective classifier <=> a classifier model
  // Re-runs a non-finite step's micro-batches with their seeds and finds the first example whose loss term, or
  // whose gradient (by bisection over examples), is not finite: {stage, term, t, example, ...} (trainer_diagnose.cpp).
  nlohmann::json diagnose_nonfinite(const std::vector<data::Batch>& batches);
  std::string describe_nonfinite(const nlohmann::json& d) const;

  Config cfg_;
  TrainerEnv env_;
  std::unique_ptr<Process> process_;
  DenoiserNet model_{nullptr};
  std::unique_ptr<FlatParams> flat_;  // before optimizer_ and ema_, which point into it
  std::unique_ptr<FusedAdamW> optimizer_;
  std::unique_ptr<Ema> ema_;
  std::unique_ptr<ProcessParams> process_params_;  // a learned schedule's leaves (empty for fixed processes)
  std::shared_ptr<data::Dataset> dataset_;
  std::unique_ptr<data::Loader> loader_;
  std::unique_ptr<dist::GradSync> grad_sync_;
  std::shared_ptr<LossAwareTimes> loss_aware_;  // objective.time_sampling loss-aware, else null
  Objective objective_;
  torch::Generator gen_;
  int64_t step_ = 0, updates_ = 0, skipped_ = 0, consecutive_skips_ = 0;
  std::vector<double> losses_;
  std::vector<data::Batch> step_batches_;  // this step's micro-batches, until the first diagnosis
  bool diagnosed_ = false;
  nlohmann::json first_nonfinite_;  // the first non-finite step's diagnosis
  AppendFile metrics_;  // rank 0's metrics.jsonl: every line written or FileError (ENOSPC, EACCES, ...)
  bool stop_ = false;   // this step agreed to stop (data parallel: any rank asked)
  double last_grad_norm_ = NAN, last_lr_ = NAN;
  // Window for the periodic log line.
  double win_loss_ = 0, win_bits_ = 0, win_bits_sq_ = 0, win_examples_ = 0, win_seconds_ = 0, last_bits_ = NAN;
  int64_t win_steps_ = 0, win_bits_n_ = 0;
  double start_wall_ = 0;
  std::unique_ptr<tb::EventWriter> tb_;
  std::unique_ptr<ProgressBar> bar_;
  double items_per_example_ = 1;  // progress throughput: 1 (ex/s) or tokens per sequence (tok/s)
};

}  // namespace gsdiff
