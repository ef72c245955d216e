// Micro-benchmark: forward and forward+backward of every shipped model config on CPU.
#include <benchmark/benchmark.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <fstream>
#include <string>
#include <vector>

#include "models/denoiser.h"

namespace {

struct Case {
  std::string config;            // configs/models/<config>
  std::vector<int64_t> x_shape;  // input shape (batch first)
  bool tokens;                   // int64 tokens in [0, vocab) instead of float
};

nlohmann::json load(const std::string& name) {
  std::ifstream f(std::string(GSDIFF_SOURCE_DIR) + "/configs/models/" + name);
  return nlohmann::json::parse(f);
}

torch::Tensor make_input(const Case& c) {
  return c.tokens ? torch::randint(0, 27, c.x_shape, torch::kLong) : torch::randn(c.x_shape);
}

void forward(benchmark::State& state, Case c) {
  torch::manual_seed(0);
  auto net = gsdiff::make_model(load(c.config));
  net->eval();
  auto x = make_input(c);
  auto t = torch::rand({c.x_shape[0]});
  torch::NoGradGuard g;
  for (auto _ : state) benchmark::DoNotOptimize(net(x, t));
  state.SetItemsProcessed(state.iterations() * c.x_shape[0]);
  state.counters["params_M"] = gsdiff::count_parameters(*net) / 1e6;
}

void forward_backward(benchmark::State& state, Case c) {
  torch::manual_seed(0);
  auto net = gsdiff::make_model(load(c.config));
  net->train();
  auto x = make_input(c);
  auto t = torch::rand({c.x_shape[0]});
  for (auto _ : state) {
    net->zero_grad();
    auto out = net(x, t);
    out.pow(2).mean().backward();
  }
  state.SetItemsProcessed(state.iterations() * c.x_shape[0]);
}

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(2);
  const std::vector<Case> cases = {
      {"unet-tiny.json", {4, 3, 32, 32}, false},         {"unet-fashion.json", {8, 1, 28, 28}, false},
      {"unet-ddpm-cifar10.json", {1, 3, 32, 32}, false}, {"transformer-tiny.json", {8, 256}, true},
      {"transformer-small.json", {2, 256}, true},        {"transformer-base.json", {1, 256}, true},
  };
  for (const auto& c : cases) {
    const std::string name = c.config.substr(0, c.config.size() - 5) + "/B" + std::to_string(c.x_shape[0]);
    benchmark::RegisterBenchmark(("forward/" + name).c_str(), forward, c)->Unit(benchmark::kMillisecond)->MinTime(1.0);
    benchmark::RegisterBenchmark(("fwd_bwd/" + name).c_str(), forward_backward, c)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("torch_threads", "2");
  benchmark::AddCustomContext("libtorch", TORCH_VERSION);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
