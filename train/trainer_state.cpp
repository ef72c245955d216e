// Trainer checkpoints: config, model, EMA, optimizer, counters, every RNG and the loader position.
#include <iostream>

#include "train/checkpoint.h"
#include "train/loss_aware.h"
#include "train/trainer.h"

namespace gsdiff {

namespace {

int64_t read_int(torch::serialize::InputArchive& ar, const std::string& key) {
  c10::IValue v;
  ar.read(key, v);
  return v.toInt();
}

std::string read_string(torch::serialize::InputArchive& ar, const std::string& key) {
  c10::IValue v;
  ar.read(key, v);
  return v.toStringRef();
}

}  // namespace

std::string Trainer::save_checkpoint() {
  torch::serialize::OutputArchive ar;
  ar.write("format", c10::IValue(std::string("gsdiff-trainer-1")));
  ar.write("config", c10::IValue(cfg_.resolved.dump()));
  ar.write("step", c10::IValue(step_));
  ar.write("updates", c10::IValue(updates_));
  ar.write("skipped", c10::IValue(skipped_));
  ar.write("consecutive_skips", c10::IValue(consecutive_skips_));
  torch::serialize::OutputArchive m;
  model_->save(m);
  ar.write("model", m);
  if (ema_) {
    torch::serialize::OutputArchive e;
    ema_->save(e);
    ar.write("ema", e);
  }
  ar.write("optimizer_name", c10::IValue(cfg_.train.optimizer()));
  if (optimizer_) {  // sgd has no state
    torch::serialize::OutputArchive o;
    optimizer_->save(o);
    ar.write("optimizer", o);
  }
  process_params_->save(ar);  // a learned schedule's values and Adam state (nothing for a fixed process)
  if (loss_aware_) {
    torch::serialize::OutputArchive la;
    loss_aware_->save(la);
    ar.write("loss_aware", la);
  }
  ar.write("rng_trainer", gen_.get_state());
  ar.write("rng_torch_cpu", at::detail::getDefaultCPUGenerator().get_state());
  ar.write("loader", c10::IValue(loader_->position().to_json().dump()));
  auto path = env_.out_dir + "/" + checkpoint_name(step_);
  write_checkpoint_file(path, archive_to_bytes(ar));
  prune_checkpoints(env_.out_dir, cfg_.train.keep_checkpoints(), path);
  return path;
}

void Trainer::load_checkpoint(const std::string& path) {
  auto bytes = read_checkpoint_file(path);  // envelope verified before torch sees a byte
  torch::serialize::InputArchive ar;
  bytes_to_archive(bytes, ar);
  auto saved = nlohmann::json::parse(read_string(ar, "config"));
  for (const char* k : {"process", "model"})
    if (saved.at(k) != cfg_.resolved.at(k))
      throw CheckpointError("checkpoint '" + path + "': its '" + k + "' config differs from this run's");
  step_ = read_int(ar, "step");
  updates_ = read_int(ar, "updates");
  skipped_ = read_int(ar, "skipped");
  consecutive_skips_ = read_int(ar, "consecutive_skips");
  c10::IValue saved_opt;  // absent before train.optimizer existed: adamw
  const std::string opt_name = ar.try_read("optimizer_name", saved_opt) ? saved_opt.toStringRef() : "adamw";
  if (opt_name != cfg_.train.optimizer())
    throw CheckpointError("checkpoint '" + path + "': saved with train.optimizer '" + opt_name + "', this run has '" +
                          cfg_.train.optimizer() + "'");
  torch::serialize::InputArchive m, o;
  ar.read("model", m);
  model_->load(m);
  model_->to(env_.device);
  flat_->rebind();  // Module::load re-pointed the parameters at the archive's tensors
  if (ema_) {
    torch::serialize::InputArchive e;
    ar.read("ema", e);
    ema_->load(e);
  }
  if (optimizer_) {
    ar.read("optimizer", o);
    optimizer_->load(o);
  }
  try {
    process_params_->load(ar);
  } catch (const std::exception& e) {
    throw CheckpointError("checkpoint '" + path + "': the process's learned parameters: " + e.what());
  }
  if (loss_aware_) {  // a checkpoint of a run that sampled otherwise: the sampler starts afresh (uniform)
    torch::serialize::InputArchive la;
    if (ar.try_read("loss_aware", la)) {
      try {
        loss_aware_->load(la);
      } catch (const std::exception& e) {
        throw CheckpointError("checkpoint '" + path + "': " + e.what());
      }
    }
  }
  torch::Tensor rng;
  ar.read("rng_trainer", rng);
  gen_.set_state(rng);
  ar.read("rng_torch_cpu", rng);
  at::Generator global = at::detail::getDefaultCPUGenerator();  // shares the global generator
  global.set_state(rng);
  const auto pos = data::LoaderPosition::from_json(nlohmann::json::parse(read_string(ar, "loader")));
  try {
    loader_->set_position(pos);  // another world size continues the one-process order where it can
  } catch (const std::exception& e) {
    throw CheckpointError("checkpoint '" + path + "': " + e.what());
  }
  if (env_.verbose && is_main()) {
    std::cerr << "resumed from " << path << " at step " << step_ << "\n";
    if (pos.world != world()) {
      int64_t saved_acc = 1;
      if (saved.contains("train") && saved["train"].contains("accumulate") && saved["train"]["accumulate"].is_number_integer())
        saved_acc = saved["train"]["accumulate"].get<int64_t>();
      const bool same = pos.world * saved_acc == world() * cfg_.train.accumulate();
      std::cerr << "the run was saved by " << pos.world << " rank(s) x accumulate " << saved_acc << " and goes on as "
                << world() << " x " << cfg_.train.accumulate()
                << (same ? ": the same global batch and run" : ": the global batch changes (set train.accumulate to keep it)")
                << "\n";
    }
  }
}

// A model (with EMA weights if asked and present) and process restored from a checkpoint.
Restored restore_for_inference(const std::string& path, bool use_ema, const torch::Device& device) {
  auto bytes = read_checkpoint_file(path);
  torch::serialize::InputArchive ar;
  bytes_to_archive(bytes, ar);
  Restored r;
  r.config = parse_config(nlohmann::json::parse(read_string(ar, "config")));
  r.step = read_int(ar, "step");
  r.process = build_process(r.config);
  r.model = build_model(r.config);
  ProcessParams::load_values(*r.process, ar, torch::kCPU);  // a learned schedule as trained
  torch::serialize::InputArchive m;
  ar.read("model", m);
  r.model->load(m);
  torch::serialize::InputArchive e;
  if (use_ema && ar.try_read("ema", e)) {
    Ema ema(*r.model, 0.5, false);
    ema.load(e);
    ema.copy_to(*r.model);
    r.used_ema = true;
  }
  r.model->to(device);
  r.model->eval();
  return r;
}

}  // namespace gsdiff
