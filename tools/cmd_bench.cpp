// `gsdiff bench`: train-step and sampling throughput, peak memory and achieved FLOP/s of a config,
// printed as one JSON object (protocol: bench/README.md). Also the allocator tuning done at start-up.
#include <cxxopts.hpp>
#include <malloc.h>
#include <time.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#if defined(GSDIFF_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/cuda.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/distributions.h"
#include "core/process.h"
#include "core/registry.h"
#include "models/autocast.h"
#include "models/denoiser.h"
#include "models/onednn_conv.h"
#include "models/unet_autograd.h"
#include "tools/commands.h"
#include "tools/flags.h"
#include "tools/finite_json.h"
#include "tools/sample_util.h"
#include "train/flat_params.h"
#include "train/fused_adamw.h"

namespace gsdiff {
const char* git_commit();  // tools/CMakeLists.txt generates it at build time
}  // namespace gsdiff

namespace gsdiff::cli {

// glibc malloc against page-fault churn: LibTorch's CPU allocator hands large blocks (activations,
// gradients) straight to malloc; above the default dynamic mmap threshold every such block is a fresh
// mmap + munmap, so each step page-faults its whole working set again. Keeping them on the heap and
// not trimming it makes the pages stay mapped between steps. GSDIFF_MALLOC=default turns this off
// (for the with/without measurement in bench/README.md).
const char* tune_allocator() {
  const char* mode = std::getenv("GSDIFF_MALLOC");
  if (mode && std::strcmp(mode, "default") == 0) return "default";
  // glibc caps the mmap threshold at 32 MiB (64-bit); a larger value is rejected by mallopt.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // blocks up to 32 MiB come from the heap, not fresh mmaps
  // Never give the top of the heap back (mallopt takes an int: INT_MAX ~ 2 GiB). With 256 MiB the 35.7M
  // U-Net at batch 8 trimmed and re-faulted its activations every other step (+60% forward time).
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
  mallopt(M_TOP_PAD, 16 << 20);         // grow the heap in 16 MiB steps
  mallopt(M_ARENA_MAX, 4);              // few arenas: OpenMP threads reuse warm memory
  return "tuned";
}

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t status_kb(const char* key) {  // VmHWM / VmRSS from /proc/self/status, in kB
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') return std::stoll(line.substr(n + 1));
  return -1;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// FLOPs of one pass, counted from the input shapes of the compute ops as they run (a RecordFunction
// observer): 2 * multiply-accumulates of aten::convolution, mm, addmm, bmm, baddbmm. Linear layers
// and matmul reach these ops; elementwise ops, norms and softmax are not counted.
double g_flops = 0;  // RecordFunction callbacks are plain function pointers

struct FlopCounter {
  double flops = 0;
  at::CallbackHandle handle = 0;

  void start() {
    g_flops = 0;
    handle = at::addThreadLocalCallback(
        at::RecordFunctionCallback(
            [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
              double& flops = g_flops;
              std::string name = fn.name();
              auto in = fn.inputs();
              auto shape = [&](size_t i) -> std::vector<int64_t> {
                if (i < in.size() && in[i].isTensor()) return in[i].toTensor().sizes().vec();
                return {};
              };
              if (name == "aten::convolution") {
                auto x = shape(0), w = shape(1);
                if (x.size() < 3 || w.size() < 3) return nullptr;
                // output spatial size from the stride/padding/dilation arguments
                auto ints = [&](size_t i) { return in[i].toIntVector(); };
                auto stride = ints(3), pad = ints(4), dil = ints(5);
                bool transposed = in[6].toBool();
                int64_t groups = in[8].toInt();
                int64_t out_spatial = 1;
                for (size_t d = 2; d < x.size(); ++d) {
                  size_t k = d - 2;
                  int64_t o = transposed ? (x[d] - 1) * stride[k] - 2 * pad[k] + dil[k] * (w[d] - 1) + 1
                                         : (x[d] + 2 * pad[k] - dil[k] * (w[d] - 1) - 1) / stride[k] + 1;
                  out_spatial *= o;
                }
                int64_t kernel = 1;
                for (size_t d = 2; d < w.size(); ++d) kernel *= w[d];
                int64_t cin = x[1], cout = transposed ? w[1] * groups : w[0];
                flops += 2.0 * x[0] * cout * out_spatial * (cin / groups) * kernel;
              } else if (name == "aten::mm" || name == "aten::addmm") {
                auto a = shape(name == "aten::mm" ? 0 : 1), b = shape(name == "aten::mm" ? 1 : 2);
                if (a.size() == 2 && b.size() == 2) flops += 2.0 * a[0] * a[1] * b[1];
              } else if (name == "aten::bmm" || name == "aten::baddbmm") {
                auto a = shape(name == "aten::bmm" ? 0 : 1), b = shape(name == "aten::bmm" ? 1 : 2);
                if (a.size() == 3 && b.size() == 3) flops += 2.0 * a[0] * a[1] * a[2] * b[2];
              }
              return nullptr;
            })
            .needsInputs(true)
            .scopes({at::RecordScope::FUNCTION}));
  }
  void stop() {
    at::removeCallback(handle);
    flops = g_flops;
  }
};

std::vector<int64_t> example_shape(const nlohmann::json& model, const nlohmann::json& data, int64_t seq_len_flag) {
  std::string type = model.value("type", "");
  if (type == "unet") {
    int64_t s = model.value("image_size", 32);
    return {model.value("in_channels", 3), s, s};
  }
  int64_t L = seq_len_flag > 0 ? seq_len_flag : data.is_object() ? data.value("seq_len", 256) : 256;
  return {L};
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  cxxopts::Options o(argv[0],
                     "Measure a config's train step (forward / backward / optimizer), sampling network calls, peak "
                     "memory and FLOP/s on synthetic data of the config's shape; prints one JSON object.");
  o.add_options()("config", "run config (with \"process\" and \"model\") or a bare model config (configs/models/*.json)",
                  cxxopts::value<std::string>())("device", "cpu | cuda", cxxopts::value<std::string>()->default_value("cpu"))(
      "profile", "also write a Chrome trace (chrome://tracing) of one extra train step to this file",
      cxxopts::value<std::string>()->default_value(""))(
      "label", "free text copied into the JSON (e.g. the variant being compared)", cxxopts::value<std::string>()->default_value(""))(
      "optimizer", "fused (flat buffers + fused AdamW, as gsdiff train) | torch (torch::optim::AdamW per tensor)",
      cxxopts::value<std::string>()->default_value("fused"))(
      "precision", "fp32 | bf16 (bf16 autocast around forward and loss, as train.precision)",
      cxxopts::value<std::string>()->default_value("fp32"))(
      "block-autograd", "on | off: U-Net ResBlock/AttnBlock as one autograd node each (models/unet_autograd.h, "
      "the default) or op by op (before)", cxxopts::value<std::string>()->default_value("on"))(
      "conv", "cached | aten: CPU convolutions on gsdiff's cached oneDNN primitives (models/onednn_conv.h, the "
      "default where built) or ATen's own", cxxopts::value<std::string>()->default_value("cached"))(
      "h,help", "show this help");
  const std::vector<NumFlag> nums = {
      {"steps", "timed train steps (and sampling calls)", NumFlag::Int64, 1, 1e9, false, false, "", "10"},
      {"warmup", "untimed steps first", NumFlag::Int64, 0, 1e9, false, false, "none", "2"},
      {"batch", "batch size", NumFlag::Int64, 0, 1e9, false, false, "data.batch_size, else 8", "0"},
      {"seq-len", "sequence length for sequence models", NumFlag::Int64, 0, 1e9, false, false,
       "data.seq_len, else 256", "0"},
      {"threads", "intra-op threads", NumFlag::Int, 0, 1 << 16, false, false, "$GSDIFF_THREADS when set, else all cores", "0"},
      {"sample-calls", "timed sampling network calls (-1 = --steps)", NumFlag::Int64, -1, 1e9, false, false,
       "no sampling", "-1"},
      {"seed", "seed", NumFlag::UInt64, 0, std::numeric_limits<double>::infinity(), false, false, "", "0"}};
  add_conv_algorithm_flag(o);
  add_num_flags(o, nums);
  auto args = parse_checked(o, argc, argv, nums);
  if (args.count("help") || !args.count("config")) {
    std::cout << o.help() << "\n";
    return args.count("help") ? 0 : 2;
  }
  const std::string path = args["config"].as<std::string>();
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open config '" + path + "'");
  nlohmann::json j = nlohmann::json::parse(f);
  nlohmann::json model_cfg, process_cfg, data_cfg;
  if (j.contains("model")) {
    model_cfg = j["model"];
    process_cfg = j.value("process", nlohmann::json::object());
    data_cfg = j.value("data", nlohmann::json::object());
  } else {
    model_cfg = j;
  }
  if (process_cfg.empty() || process_cfg.is_null())
    process_cfg = model_cfg.value("type", "") == "transformer"
                      ? nlohmann::json{{"name", "absorbing"}, {"K", model_cfg.value("out_dim", 27)}, {"steps", 0}}
                      : nlohmann::json{{"name", "gaussian-vp"}, {"steps", 1000}};

  set_threads(args["threads"].as<int>());
  apply_conv_algorithm_flag(args);
  const torch::Device device = parse_device(args["device"].as<std::string>());
  const int64_t steps = std::max<int64_t>(1, args["steps"].as<int64_t>());
  const int64_t warmup = std::max<int64_t>(0, args["warmup"].as<int64_t>());
  int64_t batch = args["batch"].as<int64_t>();
  if (batch <= 0) batch = data_cfg.is_object() ? data_cfg.value("batch_size", int64_t(8)) : 8;
  int64_t sample_calls = args["sample-calls"].as<int64_t>();
  if (sample_calls < 0) sample_calls = steps;
  torch::manual_seed(args["seed"].as<uint64_t>());
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(args["seed"].as<uint64_t>());  // the batches, up front
  auto step_gen = make_generator(device, args["seed"].as<uint64_t>() + 1);  // x_t inside the step, on the device

  register_builtins();
  auto process = make_process(process_cfg);
  DenoiserNet net = make_model(model_cfg);
  net->to(device);
  const int64_t params = count_parameters(*net);
  // AdamW(lr 2e-4, weight decay 0.01: torch's default, as in compare_python.py). "fused": the trainer's
  // optimizer (train/fused_adamw.h) on flat parameter/gradient buffers; "torch": LibTorch's per-tensor AdamW.
  const std::string optimizer = args["optimizer"].as<std::string>();
  if (optimizer != "fused" && optimizer != "torch") throw std::runtime_error("--optimizer: fused or torch");
  const std::string precision = args["precision"].as<std::string>();
  if (precision != "fp32" && precision != "bf16") throw std::runtime_error("--precision: fp32 or bf16, got '" + precision + "'");
  const std::string block_autograd = args["block-autograd"].as<std::string>();
  if (block_autograd != "on" && block_autograd != "off")
    throw std::runtime_error("--block-autograd: on or off, got '" + block_autograd + "'");
  set_block_autograd(block_autograd == "on");
  const std::string conv = args["conv"].as<std::string>();
  if (conv != "cached" && conv != "aten") throw std::runtime_error("--conv: cached or aten, got '" + conv + "'");
  if (conv == "cached" && !cached_conv_built())
    throw std::runtime_error("--conv cached: this gsdiff was built without oneDNN (GSDIFF_ONEDNN; libdnnl-dev 2.x)");
  set_cached_conv(conv == "cached");
  std::unique_ptr<torch::optim::AdamW> torch_opt;
  std::unique_ptr<FlatParams> flat;
  std::unique_ptr<FusedAdamW> fused_opt;
  if (optimizer == "torch") {
    torch_opt = std::make_unique<torch::optim::AdamW>(net->parameters(), torch::optim::AdamWOptions(2e-4));
  } else {
    flat = std::make_unique<FlatParams>(net->parameters());
    AdamWHyper h;
    h.lr = 2e-4;
    fused_opt = std::make_unique<FusedAdamW>(*flat, h);
  }

  std::vector<int64_t> shape = {batch};
  for (auto d : example_shape(model_cfg, data_cfg, args["seq-len"].as<int64_t>())) shape.push_back(d);
  // Category data (discrete processes, and Gaussian processes on token codes such as gaussian-embed):
  // x_t from the config's process and cross-entropy on x0; real data: the eps-MSE step below.
  const bool discrete = process->num_categories() > 0;
  auto make_x0 = [&]() {
    return discrete ? torch::randint(0, process->num_categories(), shape, gen, torch::kLong)
                    : torch::rand(shape, gen) * 2 - 1;
  };
  // Batches are generated up front (on the device) so the timed loop holds no data work.
  std::vector<torch::Tensor> x0s, ts;
  for (int64_t i = 0; i < std::min<int64_t>(steps + warmup, 4); ++i) {
    x0s.push_back(make_x0().to(device));
    ts.push_back(torch::rand({batch}, gen).to(device));
  }
  auto sync = [&]() {
#if defined(GSDIFF_WITH_CUDA)
    if (device.is_cuda()) torch::cuda::synchronize();
#endif
  };

  // The train step: x_t from x0 (discrete: the config's process q(x_t | x0); continuous: a cosine VP
  // step x_t = a x0 + sqrt(1 - a^2) eps), the network on the process's input, eps-MSE (continuous) or
  // cross-entropy on x0 (discrete), backward, AdamW. The same step as bench/compare_python.py.
  net->train();
  std::vector<double> fwd_w, bwd_w, opt_w, step_w, step_c;
  c10::ScalarType out_dtype = c10::ScalarType::Undefined;  // the network output's dtype (bf16 under autocast)
  auto train_step = [&](int64_t i, bool timed) {
    const auto& x0 = x0s[i % x0s.size()];
    const auto& t = ts[i % ts.size()];
    double c0 = cpu_seconds(), w0 = wall_seconds();
    if (flat) flat->zero_grad();
    else torch_opt->zero_grad();
    torch::Tensor loss;
    {  // forward and loss (inside bf16 autocast with --precision bf16, as the trainer)
      Bf16Autocast amp(device.is_cuda(), precision == "bf16");
      if (discrete) {
        auto xt = process->sample_xt(x0, t, step_gen);
        auto out = net->forward(process->network_input(xt, t), t);
        out_dtype = out.scalar_type();
        loss = torch::nn::functional::cross_entropy(out.reshape({-1, out.size(-1)}), x0.reshape({-1}));
      } else {
        auto noise = at::randn(x0.sizes(), step_gen, x0.options());
        auto a = torch::cos(t * (M_PI / 2)).view({-1, 1, 1, 1});
        auto xt = a * x0 + torch::sqrt(1 - a * a) * noise;
        auto out = net->forward(process->network_input(xt, t), t);
        out_dtype = out.scalar_type();
        loss = torch::mse_loss(out, noise);
      }
    }
    sync();
    double w1 = wall_seconds();
    loss.backward();
    sync();
    double w2 = wall_seconds();
    if (fused_opt) fused_opt->step();
    else torch_opt->step();
    sync();
    double w3 = wall_seconds(), c3 = cpu_seconds();
    if (timed) {
      fwd_w.push_back(w1 - w0);
      bwd_w.push_back(w2 - w1);
      opt_w.push_back(w3 - w2);
      step_w.push_back(w3 - w0);
      step_c.push_back(c3 - c0);
    }
  };
  for (int64_t i = 0; i < warmup; ++i) train_step(i, false);
  const double train_c0 = cpu_seconds(), train_w0 = wall_seconds();
  for (int64_t i = 0; i < steps; ++i) train_step(warmup + i, true);
  const double train_wall = wall_seconds() - train_w0, train_cpu = cpu_seconds() - train_c0;
  if (const auto prof = args["profile"].as<std::string>(); !prof.empty()) {
    torch::autograd::profiler::RecordProfile guard(prof);
    train_step(0, false);
  }

  // Sampling: network calls in eval mode without autograd, the reverse-process input shape.
  net->eval();
  std::vector<double> call_w, call_c;
  double flops_forward = 0;
  {
    torch::NoGradGuard ng;
    auto x = discrete ? process->network_input(process->sample_xt(x0s[0], ts[0], step_gen), ts[0])
                      : x0s[0];
    for (int64_t i = 0; i < std::min<int64_t>(warmup, 1); ++i) net->forward(x, ts[0]);
    sync();
    for (int64_t i = 0; i < sample_calls; ++i) {
      double w0 = wall_seconds(), c0 = cpu_seconds();
      auto out = net->forward(x, ts[i % ts.size()]);
      sync();
      call_w.push_back(wall_seconds() - w0);
      call_c.push_back(cpu_seconds() - c0);
    }
    // The observer sees ATen ops: the counting forward runs ATen's convolutions (the cached ones are not ATen ops).
    set_cached_conv(false);
    FlopCounter fc;
    fc.start();
    net->forward(x, ts[0]);
    fc.stop();
    flops_forward = fc.flops;
    set_cached_conv(conv == "cached");
  }

  nlohmann::json r;
  r["command"] = "bench";
  r["config"] = path;
  r["label"] = args["label"].as<std::string>();
  r["optimizer"] = optimizer;
  r["precision"] = precision;
  r["block_autograd"] = block_autograd;
  r["conv"] = conv;
  r["conv_algorithm"] = args["conv-algorithm"].as<std::string>();
  r["output_dtype"] = c10::toString(out_dtype);  // of the train step's network output
  r["device"] = device.str();
  r["threads"] = torch::get_num_threads();
  r["libtorch"] = TORCH_VERSION;
  r["commit"] = git_commit();  // generated at build time (cmake/write_commit.cmake)
  r["allocator"] = std::getenv("GSDIFF_MALLOC") && !std::strcmp(std::getenv("GSDIFF_MALLOC"), "default") ? "default" : "tuned";
  if (const char* pre = std::getenv("LD_PRELOAD")) r["ld_preload"] = pre;
  r["model"] = model_cfg.value("type", "");
  r["parameters"] = params;
  r["process"] = process->name();
  r["batch"] = batch;
  r["input_shape"] = shape;
  r["warmup"] = warmup;
  r["steps"] = steps;
  const double med_step = median(step_w);
  r["train"] = {
      {"steps_per_s", steps / train_wall},
      {"examples_per_s", steps * batch / train_wall},
      {"step_ms_median", 1e3 * med_step},
      {"step_cpu_ms_median", 1e3 * median(step_c)},
      {"cpu_utilisation", train_cpu / train_wall},
      {"forward_ms_median", 1e3 * median(fwd_w)},
      {"backward_ms_median", 1e3 * median(bwd_w)},
      {"optimizer_ms_median", 1e3 * median(opt_w)},
      {"step_ms_all", [&] {
         std::vector<double> v;
         for (double s : step_w) v.push_back(1e3 * s);
         return v;
       }()},
  };
  const double med_call = median(call_w);
  r["sample"] = {{"calls", sample_calls},
                 {"calls_per_s", med_call > 0 ? 1.0 / med_call : 0.0},
                 {"call_ms_median", 1e3 * med_call},
                 {"call_cpu_ms_median", 1e3 * median(call_c)},
                 {"examples_per_s", med_call > 0 ? batch / med_call : 0.0}};
  r["flops"] = {{"method", "RecordFunction observer on one eval forward: 2*MACs of aten::convolution/mm/addmm/bmm/baddbmm; train step = 3 x forward"},
                {"forward", flops_forward},
                {"train_step", 3 * flops_forward},
                {"train_flops_per_s", med_step > 0 ? 3 * flops_forward / med_step : 0.0},
                {"sample_flops_per_s", med_call > 0 ? flops_forward / med_call : 0.0}};
  if (device.is_cuda()) {
#if defined(GSDIFF_WITH_CUDA)
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    r["peak_memory_bytes"] = stats.allocated_bytes[0].peak;  // StatType::AGGREGATE
    r["peak_memory_source"] = "CUDACachingAllocator allocated_bytes peak";
#endif
  } else {
    r["peak_memory_bytes"] = status_kb("VmHWM") * 1024;
    r["peak_memory_source"] = "VmHWM (/proc/self/status)";
  }
  require_finite(r, "gsdiff bench");
  std::cout << r.dump() << std::endl;
  return 0;
}

}  // namespace gsdiff::cli
