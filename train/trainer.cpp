// The training loop, read top-down in named phases: batch, loss, backward, check, update, record.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include <signal.h>

#include "core/distributions.h"
#include "core/registry.h"
#include "data/factory.h"
#include "models/autocast.h"
#include "models/classifier.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/loss_aware.h"
#include "train/progress.h"
#include "train/tensorboard.h"

namespace gsdiff {

namespace {

// Slots of the header that rides in the gradient all-reduce (data parallel; FlatParams grad_header): this rank's
// step statistics and stop request in, their means over ranks out.
enum SyncSlot : int64_t { kSyncLoss, kSyncBits, kSyncBitsSq, kSyncBitsN, kSyncExamples, kSyncStop, kSyncSlots };

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename F>
auto with_context(const std::string& what, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError("config: section '" + what + "': " + e.what());
  }
}

}  // namespace

std::unique_ptr<Process> build_process(const Config& cfg) {
  return with_context("process", [&] { return make_process(cfg.process); });
}

DenoiserNet build_model(const Config& cfg) {
  return with_context("model", [&] { return make_model(cfg.model); });
}

std::atomic<bool>& Trainer::stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

Trainer::Trainer(Config cfg, TrainerEnv env)
    : cfg_(std::move(cfg)), env_(std::move(env)), gen_(make_generator(env_.device, cfg_.train.seed())) {
  const auto& T = cfg_.train;
  torch::manual_seed(T.seed());  // model initialisation and dropout use the global generator
  process_ = build_process(cfg_);
  model_ = build_model(cfg_);
  model_->to(env_.device);
  dataset_ = with_context("data", [&] { return data::make_dataset(cfg_.data); });
  auto lopt = data::loader_options_from_json(cfg_.data);
  lopt.device = env_.device;
  if (env_.dist) lopt.rank = env_.dist->rank(), lopt.world = env_.dist->world();  // disjoint share per rank
  loader_ = std::make_unique<data::Loader>(dataset_, lopt);
  loss_aware_ = with_context("objective", [&] { return make_loss_aware(cfg_.objective, *process_, env_.device); });
  objective_ = make_objective(cfg_.objective, *process_, loss_aware_);
  check_classifier_run();
  // Parameters and gradients live in flat buffers: zero_grad, clipping, AdamW and EMA are whole-buffer ops. Data
  // parallel: the header slots carry the step's statistics, then the loss-aware sampler's sums.
  const int64_t header = kSyncSlots + (loss_aware_ ? 2 * loss_aware_->bins() : 0);
  flat_ = std::make_unique<FlatParams>(model_->parameters(), env_.dist ? header : 0);
  if (T.optimizer() == "adamw") {
    AdamWHyper h;
    h.lr = T.lr(), h.beta1 = T.beta1(), h.beta2 = T.beta2(), h.eps = T.adam_eps(), h.weight_decay = T.weight_decay();
    optimizer_ = std::make_unique<FusedAdamW>(*flat_, h);
  }
  if (T.ema_decay() > 0) ema_ = std::make_unique<Ema>(*model_, *flat_, T.ema_decay(), T.ema_warmup());
  process_params_ = std::make_unique<ProcessParams>(*process_, env_.device, T.beta1(), T.beta2(), T.adam_eps());
  const auto schedule = process_->options_json().value("schedule", nlohmann::json());  // a name, or an object (discrete)
  if (model_->self_conditioned() && schedule.is_string() && schedule == "learned-logsnr")
    throw ConfigError("model.self_condition: not with process.schedule 'learned-logsnr' (the estimate is read at the "
                      "network's time, which the learned schedule remaps to its noise level)");
  if (!process_params_->empty() && cfg_.objective.name() != "elbo")
    throw ConfigError("objective.name: a process with learned parameters (" + process_->name() +
                      ", a learned schedule) trains on the ELBO: expected 'elbo', got '" + cfg_.objective.name() + "'");

  std::error_code ec;
  std::filesystem::create_directories(env_.out_dir, ec);
  if (ec) throw_file_error("--out", env_.out_dir, "creating the directory", ec.value());
  if (is_main())  // a write killed before its rename left its temporary file: never a checkpoint, removed
    for (const auto& t : remove_stale_temporaries(env_.out_dir))
      if (env_.verbose) std::cerr << "removed " << t << " (an interrupted checkpoint write)\n";
  std::string resume = env_.resume;
  if (resume == "auto") resume = newest_valid_checkpoint(env_.out_dir);
  if (!resume.empty()) load_checkpoint(resume);
  check_out_dir(resume);
  if (env_.dist) {  // rank 0's weights everywhere (the noise streams: seed_micro_batch)
    grad_sync_ = std::make_unique<dist::GradSync>(env_.dist, *flat_);  // in place on the flat gradients
    grad_sync_->broadcast_parameters();
  }
  if (is_main()) open_records();  // metrics.jsonl, config.json, TensorBoard, progress bar (trainer_record.cpp)
  start_wall_ = now_s();
}

Trainer::~Trainer() = default;

// A classifier (models/classifier.h) trains with objective classifier on labelled data, and only it does; it has no
// bound to validate.
void Trainer::check_classifier_run() const {
  const bool classifier = as_classifier(const_cast<DenoiserNet&>(model_)) != nullptr;
  if (classifier != (cfg_.objective.name() == "classifier"))
    throw ConfigError("config: field 'objective.name' '" + cfg_.objective.name() + "' and field 'model.type' '" +
                      model_->config().value("type", std::string()) +
                      "' do not go together: the classifier objective trains a model of type classifier, and only it");
  if (classifier && dataset_->num_classes() == 0)
    throw ConfigError("config: field 'data.name' '" + dataset_->name() + "' has no labels for the classifier objective");
  if (classifier && as_classifier(const_cast<DenoiserNet&>(model_))->classes() < dataset_->num_classes())
    throw ConfigError("config: field 'model.classes' is below the data's " + std::to_string(dataset_->num_classes()) + " classes");
  if (classifier && cfg_.train.eval_every() > 0)
    throw ConfigError("config: field 'train.eval_every' must be 0 for a classifier (it has no likelihood bound)");
}

// One run per output directory: a fresh run does not start among another run's checkpoints (pruning and
// --resume auto would mix them), and a resume from an older checkpoint does not continue below later ones.
void Trainer::check_out_dir(const std::string& resumed) const {
  if (!is_main()) return;
  const auto newest_valid = newest_valid_checkpoint(env_.out_dir);  // corrupt files alone hold no run
  if (newest_valid.empty()) return;
  if (resumed.empty())
    throw std::runtime_error("--out " + env_.out_dir + " already holds checkpoints of a run (newest " + newest_valid +
                             "): --resume auto continues that run; give another --out for a new one");
  const int64_t newest = checkpoint_step(newest_valid);
  if (newest > step_)
    throw std::runtime_error("--resume " + resumed + " is at step " + std::to_string(step_) + " but --out " +
                             env_.out_dir + " holds a later checkpoint (step " + std::to_string(newest) +
                             "): continuing would mix two runs; use --resume auto, or another --out");
}

FusedAdamW& Trainer::optimizer() {
  if (!optimizer_) throw std::logic_error("train.optimizer is '" + cfg_.train.optimizer() + "': no AdamW state");
  return *optimizer_;
}

bool Trainer::stopping() const { return env_.dist ? stop_ : stop_requested().load(); }

int Trainer::rank() const { return env_.dist ? env_.dist->rank() : 0; }
int Trainer::world() const { return env_.dist ? env_.dist->world() : 1; }

double Trainer::lr_at(int64_t u) const {
  const auto& T = cfg_.train;
  double lr = T.lr();
  if (T.warmup_steps() > 0 && u < T.warmup_steps()) return lr * double(u + 1) / double(T.warmup_steps());
  if (T.lr_schedule() == "cosine") {
    double span = double(std::max<int64_t>(1, T.steps() - T.warmup_steps()));
    double progress = std::min(1.0, double(u - T.warmup_steps()) / span);
    lr *= 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  return lr;
}

// A micro-batch's randomness (label dropout, t, noise, network dropout) is a pure function of the seed and the
// batch's place in the one-process order: the loader interleaves ranks by whole batches (data/shuffle.h), so
// rank r's batch j is one-process batch j * world + r. N ranks with train.accumulate A therefore draw exactly
// what one process with accumulate N * A draws, and train the same run up to float summation order (when an
// epoch's batch count divides by N). A resume, at any step, needs no generator state.
void Trainer::seed_micro_batch(const data::Batch& batch) {
  const uint64_t key = data::mix_seed(cfg_.train.seed(), uint64_t(batch.epoch), uint64_t(batch.index * world() + rank()));
  gen_.set_current_seed(key);
  torch::manual_seed(key ^ 0x94D049BB133111EBull);  // dropout draws from the global generators
}

ObjectiveResult Trainer::micro_objective(const data::Batch& batch) {
  const auto& T = cfg_.train;
  seed_micro_batch(batch);
  auto x0 = to_process_space(*process_, batch.x).to(env_.device);  // [B, ...]
  Bf16Autocast amp(env_.device.is_cuda(), T.precision() == "bf16");  // forward and loss only
  if (as_classifier(model_)) return objective_(*process_, classifier_log_prob_fn(model_, batch.labels.to(env_.device)), x0, gen_);
  torch::Tensor y;
  if (batch.labels.defined() && model_->num_classes() > 0) {  // label dropout to the null class
    auto drop = at::rand({x0.size(0)}, gen_, torch::TensorOptions().dtype(torch::kFloat64).device(gen_.device())) < T.label_dropout();
    auto labels = batch.labels.to(env_.device);
    y = torch::where(drop.to(env_.device), torch::full_like(labels, model_->num_classes()), labels);
  }
  return objective_(*process_, train_denoise_fn(y), x0, gen_);
}

// Self-conditioning (Chen et al. 2022, Alg. 1): with probability 1/2 per micro-batch, drawn from its seeded
// generator (a resume redraws the same), the network sees the estimate of a first pass without gradient at the
// same (x_t, t); otherwise zeros. A model without it draws nothing: its run is the one before this option.
DenoiseFn Trainer::train_denoise_fn(const torch::Tensor& y) {
  if (!model_->self_conditioned()) return denoise_fn(model_, y);
  auto u = at::rand({1}, gen_, torch::TensorOptions().dtype(torch::kFloat64).device(gen_.device()));
  auto f = self_cond_fn(model_, y);
  return u.item<double>() < 0.5 ? self_condition_two_pass(*process_, f) : self_condition_zeros(f);
}

// Written before the last micro-batch's backward, whose final bucket carries the header (train/distributed.h).
void Trainer::write_sync_header(const torch::Tensor& loss, const torch::Tensor& bits, const torch::Tensor& bits_sq,
                                int64_t bits_n, double examples) {
  auto header = flat_->grad_header();  // [kSyncSlots] in the gradients' dtype
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(header.device());
  auto host = torch::tensor({double(bits_n), examples, stop_requested().load() ? 1.0 : 0.0}, f64);
  auto stats = torch::cat({torch::stack({loss, bits, bits_sq}).to(header.device()), host});  // [kSyncSlots]
  if (loss_aware_) stats = torch::cat({stats, loss_aware_->pending().to(header.device())});
  header.copy_(stats);
}

void Trainer::fold_loss_aware(bool finite) {
  if (!loss_aware_) return;
  if (!finite) return loss_aware_->discard();
  if (!grad_sync_) return loss_aware_->commit(loss_aware_->pending());
  // The header holds the means over ranks: times the world size, the global batch's sums.
  loss_aware_->commit(flat_->grad_header().narrow(0, kSyncSlots, 2 * loss_aware_->bins()).to(torch::kFloat64) * double(world()));
}

// debug.fault: SIGKILL or SIGSTOP to this process from inside backward (a parameter in the middle of the model
// receives its gradient after some buckets were launched and before others), at one step on one rank.
void Trainer::inject_fault() {
  const auto& D = cfg_.debug;
  if (D.fault() == "none" || D.fault_step() != step_ + 1 || D.fault_rank() != rank()) return;
  const auto& ps = flat_->params();
  const int sig = D.fault() == "kill" ? SIGKILL : SIGSTOP;
  auto fired = std::make_shared<bool>(false);  // once: a stopped process continued (SIGCONT) trains on
  ps[ps.size() / 2].register_hook([sig, fired](torch::Tensor g) {
    if (!*fired) *fired = true, ::raise(sig);
    return g;
  });
}

// Phases 1-3 of a step: batches, loss and backward, accumulated over micro-batches (sums stay on the device: no host
// sync). Data parallel: buckets are all-reduced during the last micro-batch's backward, the last one with this
// rank's statistics and stop request in its header.
Trainer::StepSums Trainer::forward_backward() {
  const auto& T = cfg_.train;
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(env_.device);
  StepSums m{torch::zeros({}, f64), torch::zeros({}, f64), torch::zeros({}, f64)};  // [] float64 each
  step_batches_.clear();
  for (int64_t a = 0; a < T.accumulate(); ++a) {
    auto batch = loader_->next();
    if (!diagnosed_) step_batches_.push_back(batch);  // kept for diagnose_nonfinite until a first diagnosis
    auto x0 = batch.x;
    ObjectiveResult r = micro_objective(batch);
    auto loss = r.loss.mean() / double(T.accumulate());
    if (cfg_.debug.nan_at_step() == step_ + 1) loss = loss * std::nan("");
    m.loss += loss.detach().to(torch::kFloat64);
    m.examples += double(x0.size(0));
    if (r.nelbo.defined()) {
      auto bits = r.nelbo.detach().to(torch::kFloat64) / (double(x0[0].numel()) * std::log(2.0));  // [B]
      m.bits += bits.sum();
      m.bits_sq += bits.square().sum();
      m.bits_n += x0.size(0);
    }
    const bool last = a + 1 == T.accumulate();
    if (grad_sync_) grad_sync_->set_enabled(last);
    if (grad_sync_ && last) write_sync_header(m.loss, m.bits, m.bits_sq, m.bits_n, m.examples);
    if (last) inject_fault();
    process_->set_variance_target(r.t, r.loss);  // a learned schedule's shape: the gradient of E[L^2]
    loss.backward();
    process_->set_variance_target({}, {});
  }
  return m;
}

// Phase 4: gradients averaged across ranks and clipped; the step's figures read back in one host sync (data
// parallel: the global batch's, from the header's means over ranks) with the agreed stop request.
Trainer::StepFigures Trainer::reduce_gradients(const StepSums& m) {
  if (grad_sync_) grad_sync_->finish();
  process_params_->reduce(env_.dist.get());
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(env_.device);
  auto stats = grad_sync_ ? flat_->grad_header().narrow(0, 0, kSyncSlots).to(f64) : torch::stack({m.loss, m.bits, m.bits_sq});
  auto host = torch::cat({stats, flat_->grad_norm().to(f64).reshape({1})}).to(torch::kCPU);
  const double* h = host.data_ptr<double>();
  const double W = double(world());
  StepFigures f{h[kSyncLoss], h[kSyncBits], h[kSyncBitsSq], m.examples, h[host.numel() - 1], m.bits_n};
  if (grad_sync_) {  // means over ranks -> the global batch: the mean loss, the summed bound terms and counts
    f.bits *= W, f.bits_sq *= W, f.examples = h[kSyncExamples] * W;
    f.bits_n = int64_t(std::llround(h[kSyncBitsN] * W));
    stop_ = h[kSyncStop] > 0;
  } else {
    stop_ = stop_requested().load();
  }
  const double max_norm = cfg_.train.grad_clip() > 0 ? cfg_.train.grad_clip() : std::numeric_limits<double>::infinity();
  flat_->clip_to(f.grad_norm, max_norm);  // as clip_grad_norm_, one norm over the flat gradient
  return f;
}

// A non-finite loss or gradient norm skips the update entirely (a NaN on any rank reaches every rank through the
// average, so all skip together); the run's first says which term and which t (trainer_diagnose.cpp).
void Trainer::skip_nonfinite(const StepFigures& f) {
  flat_->zero_grad();
  process_params_->zero_grad();
  ++skipped_;
  const char* what = std::isfinite(f.loss) ? "gradient" : "loss";
  if (!diagnosed_) {
    diagnosed_ = true;
    first_nonfinite_ = diagnose_nonfinite(step_batches_);
    step_batches_.clear();
    if (is_main()) {
      metrics_.append(nlohmann::json{{"step", step_}, {"nonfinite", first_nonfinite_}}.dump() + "\n");
      if (env_.verbose) {
        progress_clear();
        std::cerr << "step " << step_ << ": non-finite " << what << ", update skipped; first cause: "
                  << describe_nonfinite(first_nonfinite_) << "\n";
      }
    }
  } else if (env_.verbose && is_main()) {
    progress_clear();
    std::cerr << "step " << step_ << ": non-finite " << what << ", update skipped\n";
  }
  if (++consecutive_skips_ >= cfg_.train.max_consecutive_skips())
    throw std::runtime_error("training diverged: " + std::to_string(consecutive_skips_) +
                             " consecutive steps with a non-finite loss or gradient (last at step " +
                             std::to_string(step_) + "); the first non-finite step: " + describe_nonfinite(first_nonfinite_));
}

// Phase 5: the update (LR schedule, AdamW or SGD, a learned schedule's Adam, EMA); returns the learning rate.
double Trainer::update() {
  const double lr = lr_at(updates_);
  if (optimizer_) {
    optimizer_->options().lr = lr;
    optimizer_->step();
  } else {
    flat_sgd_step(*flat_, lr, cfg_.train.weight_decay());
  }
  if (process_params_->finite()) process_params_->step(lr);
  if (ema_) ema_->update(*model_);
  ++updates_;
  return lr;
}

// Phase 6: the log window, the progress bar and (every log_every steps) a metrics line.
void Trainer::record(const StepFigures& f, double lr, double seconds) {
  last_grad_norm_ = f.grad_norm, last_lr_ = lr;
  win_loss_ += f.loss;
  win_examples_ += f.examples;
  win_seconds_ += seconds;
  ++win_steps_;
  if (f.bits_n > 0) win_bits_ += f.bits, win_bits_sq_ += f.bits_sq, win_bits_n_ += f.bits_n;
  last_bits_ = f.bits_n > 0 ? f.bits / double(f.bits_n) : NAN;  // this step's batch mean
  // The bar shows the running mean over the log interval so far: one step's estimate is one random
  // T-weighted term per example, far noisier than the bound it estimates.
  if (is_main()) progress(f.loss, win_bits_n_ ? win_bits_ / double(win_bits_n_) : NAN, f.examples);
  const auto& T = cfg_.train;
  if (T.log_every() > 0 && step_ % T.log_every() == 0 && is_main())
    log(win_loss_ / win_steps_, f.grad_norm, lr, win_examples_, win_seconds_);
}

bool Trainer::step() {
  const double t0 = now_s();
  model_->train();
  flat_->zero_grad();
  process_params_->zero_grad();
  if (env_.dist) env_.dist->set_progress(step_ + 1);  // what the heartbeat reports (naming a stuck rank)
  const StepSums sums = forward_backward();
  const StepFigures f = reduce_gradients(sums);
  const bool finite = std::isfinite(f.loss) && std::isfinite(f.grad_norm);
  fold_loss_aware(finite);
  ++step_;
  losses_.push_back(f.loss);
  if (!finite) {
    skip_nonfinite(f);
    return false;
  }
  consecutive_skips_ = 0;
  const double lr = update();
  record(f, lr, now_s() - t0);
  return true;
}

void Trainer::log_last() {
  if (cfg_.train.log_every() > 0 && win_steps_ > 0 && is_main())
    log(win_loss_ / win_steps_, last_grad_norm_, last_lr_, win_examples_, win_seconds_);
}

void Trainer::run(int64_t until) {
  const auto& T = cfg_.train;
  if (until < 0) until = T.steps();
  if (bar_) bar_->start(step_, until);
  auto sample = [&] {  // with the EMA weights swapped in when sample.ema
    progress_clear();
    with_ema_weights(cfg_.sample.ema(), [&] { on_sample(*this); });
  };
  stop_ = false;
  while (step_ < until && !stopping()) {
    step();
    if (!is_main()) continue;  // rank 0 alone writes checkpoints, validation metrics and samples
    if (stopping()) break;     // the step is done: straight to the checkpoint
    if (T.checkpoint_every() > 0 && step_ % T.checkpoint_every() == 0 && step_ < until) save_checkpoint();
    if (T.eval_every() > 0 && step_ % T.eval_every() == 0) validate();
    if (on_sample && T.sample_every() > 0 && step_ % T.sample_every() == 0 && step_ < until) sample();
  }
  stop_ = stopping();
  log_last();  // the last step always has its metrics line (a run shorter than log_every included)
  if (stop_ && env_.verbose && (is_main() || env_.dist))
    std::cerr << (env_.dist ? "rank " + std::to_string(rank()) + ": " : std::string()) << "interrupted at step "
              << step_ << (is_main() ? "; saving checkpoint" : "") << "\n";
  if (is_main()) {
    if (bar_) bar_->finish();
    auto path = save_checkpoint();
    if (env_.verbose) std::cerr << "checkpoint " << path << "\n";
  }
  if (env_.dist) env_.dist->barrier();  // every rank leaves once rank 0's checkpoint is on disk
  if (is_main() && on_sample && !stop_) sample();
}

}  // namespace gsdiff
