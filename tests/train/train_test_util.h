// Helpers for the train tests: a tiny MLP denoiser for 2-D toys, toy configs, temp dirs.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <unistd.h>

#include "data/factory.h"
#include "models/denoiser.h"
#include "train/evaluate.h"
#include "train/trainer.h"

namespace gsdiff::testing {

// x [B,D] float, t [B] -> [B,D]: MLP on (x, sin/cos features of t). Registered as model type "test-mlp".
struct TestMlpImpl : DenoiserNetImpl {
  explicit TestMlpImpl(int64_t dim, int64_t hidden) : dim_(dim), hidden_(hidden) {
    net = register_module("net", torch::nn::Sequential(torch::nn::Linear(dim + 16, hidden), torch::nn::SiLU(),
                                                        torch::nn::Linear(hidden, hidden), torch::nn::SiLU(),
                                                        torch::nn::Linear(hidden, hidden), torch::nn::SiLU(),
                                                        torch::nn::Linear(hidden, dim)));
  }
  torch::Tensor forward(torch::Tensor x, torch::Tensor t, torch::Tensor y = {}) override {
    auto freqs = torch::exp(torch::arange(8, torch::kFloat32) * std::log(1000.0) / 7.0);  // [8]
    auto a = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);                    // [B,8]
    return net->forward(torch::cat({x.to(torch::kFloat32), torch::sin(a), torch::cos(a)}, 1));  // [B,D]
  }
  int64_t num_classes() const override { return 0; }
  nlohmann::json config() const override { return {{"type", "test-mlp"}, {"dim", dim_}, {"hidden", hidden_}}; }
  int64_t dim_, hidden_;
  torch::nn::Sequential net{nullptr};
};

inline void register_test_models() {
  register_model("test-mlp", [](const nlohmann::json& j) {
    return as_denoiser(std::make_shared<TestMlpImpl>(j.value("dim", 2), j.value("hidden", 64)));
  });
}

// Continuous toy run: 2-D GMM ring, VP linear log-SNR, Gaussian decoder, MLP, ELBO objective.
inline nlohmann::json gmm_config(int64_t steps, int64_t hidden = 64) {
  return {{"process", {{"name", "gaussian-vp"}, {"schedule", "linear-logsnr"}, {"steps", 0},
                       {"parameterization", "eps"}, {"decoder", "gaussian"}}},
          {"model", {{"type", "test-mlp"}, {"dim", 2}, {"hidden", hidden}}},
          {"data", {{"name", "toy-gmm"}, {"n", 4000}, {"batch_size", 128}, {"seed", 0}, {"prefetch", 0}}},
          {"eval_data", {{"split", "test"}, {"n", 2000}}},
          {"objective", {{"name", "elbo"}}},
          {"train", {{"steps", steps}, {"lr", 2e-3}, {"ema_decay", 0.99}, {"log_every", 0},
                     {"checkpoint_every", 0}, {"seed", 7}, {"warmup_steps", 20}}},
          {"sample", {{"num", 16}}},
          {"eval", {{"exact", true}, {"noise_samples", 8}, {"quadrature_tol", 0.01}, {"batch_size", 500}}}};  // 0.014 nats of quadrature error at most
}

// A fresh, empty directory under the system temp dir.
inline std::string fresh_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("gsdiff_train_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// A trainer environment that writes to `dir` without progress output (resume: "", "auto" or a path).
inline TrainerEnv quiet_env(const std::string& dir, const std::string& resume = "") {
  TrainerEnv e;
  e.out_dir = dir;
  e.resume = resume;
  e.verbose = false;
  return e;
}

// Trains `cfg` to train.steps in a fresh directory `name`, then scores its eval split on the CPU
// with the final training weights.
inline BoundResult train_and_score(const Config& cfg, const std::string& name) {
  Trainer t(cfg, quiet_env(fresh_dir(name)));
  t.run();
  auto ds = data::make_dataset(eval_data_config(cfg));
  return evaluate_bound(t.process(), t.model(), *ds, cfg.eval, torch::kCPU);
}

}  // namespace gsdiff::testing
