// The trainer's records: metrics.jsonl, TensorBoard events, the progress bar, validation with EMA weights.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>

#include "data/factory.h"
#include "train/progress.h"
#include "train/tensorboard.h"
#include "train/trainer.h"

namespace gsdiff {

namespace {
double wall_now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void Trainer::open_records() {
  // Every write below names its file and the system error when it fails (core/file_io.h).
  metrics_ = AppendFile(env_.out_dir + "/metrics.jsonl", "metrics");
  write_file_atomic(env_.out_dir + "/config.json", cfg_.resolved.dump(2) + "\n", "run config");
  if (cfg_.train.tensorboard()) {
    // A new file per run in <out>/tb; TensorBoard merges the folder. On resume, a SessionLog START at the first
    // step this run writes makes TensorBoard drop what a crashed run wrote past its checkpoint.
    tb_ = std::make_unique<tb::EventWriter>(env_.out_dir + "/tb");
    if (step_ > 0) tb_->add_session_start(step_ + 1);
  }
  if (env_.verbose && isatty(STDERR_FILENO)) {
    const bool tokens = dataset_->kind() == data::DataKind::Tokens;
    if (tokens) {
      items_per_example_ = 1;
      for (auto d : dataset_->example_shape()) items_per_example_ *= double(d);
    }
    bar_ = std::make_unique<ProgressBar>(std::cerr, tokens ? "tok/s" : "ex/s");
  }
}

void Trainer::progress(double loss, double bits, double examples) {
  if (bar_) bar_->update(step_, loss, bits, examples * items_per_example_);
}

void Trainer::progress_clear() {
  if (bar_) bar_->clear();
}

void Trainer::log(double loss, double grad_norm, double lr, double examples, double seconds) {
  nlohmann::json j = {{"step", step_},      {"loss", loss},       {"lr", lr},
                      {"grad_norm", grad_norm}, {"examples_per_s", examples / std::max(seconds, 1e-9)},
                      {"wall_s", wall_now_s() - start_wall_}, {"skipped", skipped_}};
  // The bound's one-call estimate (objectives that compute it): `bits` is the mean over every example of the
  // log interval, `bits_stderr` its standard error over those examples, `bits_step` the last step's batch mean.
  // No key is written as null: an objective without a bound (simple, weighted) has no bits_* keys.
  const double n = double(win_bits_n_);
  if (win_bits_n_ > 0) {
    const double mean = win_bits_ / n;
    j["bits"] = mean;
    if (win_bits_n_ > 1) j["bits_stderr"] = std::sqrt(std::max(0.0, (win_bits_sq_ / n - mean * mean) * n / (n - 1)) / n);
    if (std::isfinite(last_bits_)) j["bits_step"] = last_bits_;
  }
  metrics_.append(j.dump() + "\n");
  if (tb_)
    for (const char* k : {"loss", "bits", "bits_step", "lr", "grad_norm", "examples_per_s"})
      if (j.contains(k)) tb_->add_scalar(std::string("train/") + k, j[k].get<double>(), step_);
  if (env_.verbose && !bar_) {
    std::cerr << "step " << step_ << "/" << cfg_.train.steps() << "  loss " << std::setprecision(5) << loss;
    if (j.contains("bits")) std::cerr << "  bits " << j["bits"].get<double>();
    if (j.contains("bits_stderr")) std::cerr << " +- " << j["bits_stderr"].get<double>();
    std::cerr << "  lr " << lr << "  |g| " << grad_norm << "  " << std::setprecision(4)
              << examples / std::max(seconds, 1e-9) << " ex/s  skipped " << skipped_ << "\n";
  }
  win_loss_ = win_bits_ = win_bits_sq_ = win_examples_ = win_seconds_ = 0;
  win_steps_ = win_bits_n_ = 0;
}

void Trainer::with_ema_weights(bool use, const std::function<void()>& f) {
  if (!use || !ema_) return f();
  // Swap in, run, swap back: a copy of the raw weights is restored with copy_ (bit for bit), in place, so the
  // optimizer's references to the parameter tensors stay valid.
  struct Restore {
    std::vector<torch::Tensor> params, raw;
    ~Restore() {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < params.size(); ++i) params[i].copy_(raw[i]);
    }
  } restore;
  {
    torch::NoGradGuard ng;
    restore.params = model_->parameters();
    for (const auto& p : restore.params) restore.raw.push_back(p.detach().clone());
    ema_->copy_to(*model_);
  }
  f();
}

BoundResult Trainer::validate() {
  std::shared_ptr<data::Dataset> ds;
  try {
    ds = data::make_dataset(eval_data_config(cfg_));
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError(std::string("config: section 'eval_data': ") + e.what());
  }
  BoundResult r;
  with_ema_weights(cfg_.eval.ema(), [&] { r = evaluate_bound(*process_, model_, *ds, cfg_.eval, env_.device); });
  if (!is_main()) return r;
  nlohmann::json j = {{"step", step_}, {"validation", r.to_json()}};
  metrics_.append(j.dump() + "\n");
  if (tb_) {
    tb_->add_scalar("validation/bound", r.mean, step_);
    tb_->add_scalar("validation/stderr", r.stderr_, step_);
  }
  if (env_.verbose) {
    progress_clear();
    std::cerr << "step " << step_ << ": validation bound " << r.mean << " +- " << r.stderr_ << " " << r.unit
              << (cfg_.eval.ema() && ema_ ? " (EMA)" : "") << "\n";
  }
  return r;
}

}  // namespace gsdiff
