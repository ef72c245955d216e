// Shared by the distributed tests: worker processes on loopback, a toy net and data, the Trainer-level run and its checks.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include "core/registry.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/flat_params.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace fs = std::filesystem;
using gsdiff::dist::GradSync;

namespace distributed_testing {

constexpr int kSteps = 3;
constexpr int64_t kGlobalBatch = 8;

struct Net : torch::nn::Module {
  torch::nn::Conv2d conv{nullptr};
  torch::nn::Linear fc{nullptr};
  torch::Tensor unused;  // never receives a gradient: exercises the "fill in finish()" path
  Net() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3)));
    fc = register_module("fc", torch::nn::Linear(4 * 6 * 6, 3));
    unused = register_parameter("unused", torch::randn({5}));
  }
  torch::Tensor forward(torch::Tensor x) { return fc(torch::relu(conv(x)).flatten(1)); }
};

inline std::pair<torch::Tensor, torch::Tensor> data_for_step(int step) {
  auto g = torch::make_generator<torch::CPUGeneratorImpl>(1000 + step);
  auto x = torch::randn({kGlobalBatch, 1, 8, 8}, g);
  auto y = torch::randn({kGlobalBatch, 3}, g);
  return {x, y};
}

// k SGD(momentum) steps on examples [lo, hi) of each step's global batch, in `accumulate` micro-batches,
// each loss scaled so that the accumulated gradient is the mean over [lo, hi).
// With `flat`, the parameters live in flat buffers (GradSync's in-place mode) and are zeroed through them.
inline void train(Net& net, int64_t lo, int64_t hi, int accumulate, GradSync* sync, int die_rank_at_step = -1, int rank = 0,
           gsdiff::FlatParams* flat = nullptr) {
  torch::optim::SGD opt(net.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  const int64_t n = hi - lo, micro = n / accumulate;
  for (int s = 0; s < kSteps; ++s) {
    if (s == die_rank_at_step) std::_Exit(3);  // a crashed rank: no cleanup, sockets closed by the kernel
    auto [x, y] = data_for_step(s);
    if (flat) flat->zero_grad();
    else opt.zero_grad();
    for (int m = 0; m < accumulate; ++m) {
      if (sync) sync->set_enabled(m == accumulate - 1);
      auto xs = x.narrow(0, lo + m * micro, micro), ys = y.narrow(0, lo + m * micro, micro);
      auto loss = torch::mse_loss(net.forward(xs), ys) / accumulate;
      loss.backward();
    }
    if (sync) sync->finish();
    opt.step();
  }
}

inline std::vector<torch::Tensor> params_of(Net& net) {
  std::vector<torch::Tensor> out;
  for (auto& p : net.parameters()) out.push_back(p.detach().clone());
  return out;
}

inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

inline std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Child {
  pid_t pid = -1;
  int status = -1;
  bool done = false;
  fs::path err;
};

// Starts `world` copies of this test binary as workers and waits up to `deadline`; kills stragglers.
inline std::vector<Child> run_workers(int world, const std::string& mode, const fs::path& dir, std::chrono::seconds deadline,
                               bool* timed_out) {
  int port = free_port();
  EXPECT_GT(port, 0);
  std::vector<Child> kids(world);
  for (int r = 0; r < world; ++r) {
    kids[r].err = dir / ("rank" + std::to_string(r) + ".err");
    pid_t pid = ::fork();
    if (pid == 0) {
      std::FILE* f = std::freopen(kids[r].err.c_str(), "w", stderr);
      std::FILE* g = std::freopen("/dev/null", "w", stdout);
      (void)f;
      (void)g;
      ::setenv("GSDIFF_DIST_WORKER", mode.c_str(), 1);
      ::setenv("GSDIFF_DIST_OUT", dir.c_str(), 1);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      const char* argv[] = {"/proc/self/exe", "--gtest_filter=DistributedWorker.Run", nullptr};
      ::execv("/proc/self/exe", const_cast<char**>(argv));
      std::_Exit(127);
    }
    kids[r].pid = pid;
  }
  auto until = std::chrono::steady_clock::now() + deadline;
  *timed_out = false;
  for (;;) {
    bool all = true;
    for (auto& k : kids) {
      if (k.done) continue;
      if (::waitpid(k.pid, &k.status, WNOHANG) == k.pid) k.done = true;
      else all = false;
    }
    if (all) break;
    if (std::chrono::steady_clock::now() > until) {
      *timed_out = true;
      for (auto& k : kids)
        if (!k.done) {
          ::kill(k.pid, SIGKILL);
          ::waitpid(k.pid, &k.status, 0);
          k.done = true;
        }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return kids;
}

// The Trainer-level run: absorbing diffusion on a Markov chain, a transformer with dropout, gradient clipping
// that binds, warmup, EMA. `batch` and `accumulate` are per process; 512 examples give 32 batches of 16, an
// even count, so 2 ranks at batch 16 and one process at batch 16 cover the same epochs.
// trainer-loss-aware: iDDPM's term sampler, whose per-bin sums ride in the gradient all-reduce's header.
// trainer-learned-schedule: VDM's learned schedule (a Gaussian toy and an MLP), whose gradients are all-reduced apart.
// trainer-sgd: plain SGD without clipping or warmup, where a wrong gradient scale shows in the weights one for one
// (AdamW normalises it away and a binding clip hides it). `lr_scale` multiplies the learning rate.
inline gsdiff::Config trainer_config(int64_t batch, int64_t accumulate, const std::string& mode = "", double lr_scale = 1) {
  nlohmann::json j = {
      {"process", {{"name", "absorbing"}, {"K", 4}, {"steps", 0}}},
      {"model", {{"type", "transformer"}, {"vocab_size", 5}, {"out_dim", 4}, {"dim", 32}, {"depth", 1},
                 {"num_heads", 2}, {"cond_dim", 16}, {"dropout", 0.1}, {"max_len", 8}}},
      {"data", {{"name", "toy-markov"}, {"n", 512}, {"seq_len", 8}, {"batch_size", batch}, {"prefetch", 1}}},
      {"objective", {{"name", "elbo"}}},
      {"train", {{"steps", 6}, {"lr", 3e-3}, {"warmup_steps", 2}, {"grad_clip", 0.05}, {"ema_decay", 0.9},
                 {"accumulate", accumulate}, {"log_every", 1}, {"checkpoint_every", 0}, {"seed", 5},
                 {"tensorboard", false}}}};
  if (mode == "trainer-sgd") {
    j["train"]["optimizer"] = "sgd";
    j["train"]["grad_clip"] = 0;
    j["train"]["warmup_steps"] = 0;
    j["train"]["lr"] = 0.05;
  }
  if (mode == "trainer-loss-aware") {  // warm after the first steps: later t follow the all-reduced sampler state
    j["objective"]["time_sampling"] = "loss-aware";
    j["objective"]["loss_aware_bins"] = 4;
    j["objective"]["loss_aware_history"] = 2;
  }
  if (mode == "trainer-learned-schedule") {  // VDM's schedule: its gradients take their own all-reduce
    gsdiff::testing::register_test_models();
    j["process"] = {{"name", "gaussian-vp"}, {"schedule", "learned-logsnr"}, {"steps", 0}, {"schedule_hidden", 4},
                    {"decoder", "gaussian"}};
    j["model"] = {{"type", "test-mlp"}, {"dim", 2}, {"hidden", 16}};
    j["data"] = {{"name", "toy-gmm"}, {"n", 512}, {"batch_size", batch}, {"seed", 0}, {"prefetch", 1}};
    j["train"]["lr"] = 1e-2;
  }
  j["train"]["lr"] = j["train"]["lr"].get<double>() * lr_scale;
  return gsdiff::parse_config(j);
}

inline gsdiff::TrainerEnv trainer_env(const fs::path& dir, std::shared_ptr<gsdiff::dist::ProcessGroup> pg = nullptr) {
  gsdiff::TrainerEnv e;
  e.out_dir = dir.string();
  e.verbose = false;
  e.dist = std::move(pg);
  return e;
}

// Raw and EMA weights of the newest checkpoint in `dir`.
inline std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> checkpoint_weights(const fs::path& dir) {
  auto path = gsdiff::newest_valid_checkpoint(dir.string());
  auto raw = gsdiff::restore_for_inference(path, /*use_ema=*/false, torch::kCPU);
  auto ema = gsdiff::restore_for_inference(path, /*use_ema=*/true, torch::kCPU);
  EXPECT_EQ(raw.step, 6);
  EXPECT_TRUE(ema.used_ema);
  std::vector<torch::Tensor> a, b;
  for (auto& p : raw.model->parameters()) a.push_back(p.detach().clone());
  for (auto& p : ema.model->parameters()) b.push_back(p.detach().clone());
  return {a, b};
}

inline double max_abs_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, (a[i] - b[i]).abs().max().item<double>());
  return m;
}

// metrics.jsonl's training lines by step (the last line of each step: a resume rewrites none here).
inline std::map<int64_t, nlohmann::json> metric_lines(const fs::path& path) {
  std::map<int64_t, nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out[j["step"].get<int64_t>()] = j;
  }
  return out;
}

// Rank 0 of 2 logs the global batch's loss and bound (all-reduced with the gradients), not its own half: equal
// to one process with the combined batch. Tolerance, relative 1e-6: the per-rank sums travel as float32
// (2^-24 relative each, 1.2e-7 for the mean of two) and the weights' float summation differences (<= 4e-7
// absolute at A = 2, above) move O(1) values by ~1e-7 more; measured <= 2e-7. The half-batch run's values (what
// rank 0 logged before) differ by far more.
inline void expect_global_metrics(const fs::path& dist, const fs::path& one, const fs::path& half, const std::string& mode) {
  const auto a = metric_lines(dist), b = metric_lines(one), c = metric_lines(half);
  ASSERT_EQ(a.size(), 6u) << dist;
  ASSERT_EQ(b.size(), 6u);
  double worst = 0, wrong = 0;
  for (const auto& [step, j] : b) {
    for (const char* k : {"loss", "bits", "bits_step", "bits_stderr", "grad_norm"}) {
      if (!j.contains(k)) continue;
      ASSERT_TRUE(a.at(step).contains(k)) << k;
      const double want = j[k].get<double>(), got = a.at(step)[k].get<double>();
      const double rel = std::abs(got - want) / std::max(1e-12, std::abs(want));
      worst = std::max(worst, rel);
      EXPECT_LT(rel, 1e-6) << mode << " step " << step << " " << k << ": 2 ranks " << got << ", 1 process " << want;
      if (std::string(k) == "loss") wrong = std::max(wrong, std::abs(c.at(step)[k].get<double>() - want) / std::abs(want));
    }
    EXPECT_EQ(a.at(step)["examples_per_s"].is_number(), true);
  }
  std::cout << mode << ": logged metrics, max relative |2 ranks - 1 process| " << worst
            << "; one rank's half batch alone " << wrong << "\n";
  EXPECT_GT(wrong, 100 * 1e-6);
}

inline fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("gsdiff_dist_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace distributed_testing
