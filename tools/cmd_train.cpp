// `gsdiff train`: trains a model from a JSON config, with checkpoints, metrics and sample grids.
#include <cxxopts.hpp>

#include <fstream>
#include <iostream>
#include <iterator>

#include "core/registry.h"
#include "sample/writers.h"
#include "tools/cli_args.h"
#include "tools/commands.h"
#include "tools/flags.h"
#include "tools/input_files.h"
#include "tools/sample_util.h"
#include "tools/stop_signals.h"
#include "train/distributed.h"
#include "train/tensorboard.h"
#include "models/classifier.h"
#include "train/trainer.h"

namespace gsdiff::cli {

namespace {

// The sample file written at `step` into TensorBoard: a PNG grid as an image, text as text (one paragraph per
// sample), CSV rows as a code block.
void samples_to_tensorboard(tb::EventWriter& tb, const std::string& path, int64_t step) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0) {
    auto img = read_png(path);  // uint8 [C, H, W]
    tb.add_image("samples", bytes, img.size(1), img.size(2), img.size(0), step);
  } else if (path.size() > 4 && path.compare(path.size() - 4, 4, ".csv") == 0) {
    tb.add_text("samples", "```\n" + bytes + "```", step);
  } else {
    std::string md;
    for (char c : bytes) md += c == '\n' ? std::string("\n\n") : std::string(1, c);
    tb.add_text("samples", md, step);
  }
}
}  // namespace

int cmd_train(int argc, char** argv) {
  cxxopts::Options o(argv[0], "Train a diffusion model from a JSON config.\n\n"
                              "SIGTERM, SIGINT and SIGUSR1 (what SLURM, Kubernetes and torchrun send on preemption or at a "
                              "time limit) finish the current step, write a checkpoint and exit with status 75 "
                              "(interrupted, resumable: continue with --resume auto); data parallel, every rank stops at "
                              "the same step. Other exit statuses: 0 done, 1 error, 2 bad command line.");
  o.add_options()("config", "config file (JSON)", cxxopts::value<std::string>())(
      "set", "override a config value: key.path=value (repeatable)", cxxopts::value<std::vector<std::string>>())(
      "out", "output directory (checkpoints, metrics.jsonl, samples)", cxxopts::value<std::string>()->default_value("out"))(
      "resume", "auto (newest valid checkpoint in --out) or a checkpoint path", cxxopts::value<std::string>()->default_value(""))(
      "device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))(
      "backend", "data parallel backend when WORLD_SIZE > 1: auto (gloo on CPU, nccl on CUDA) | gloo | nccl",
      cxxopts::value<std::string>()->default_value("auto"))(
      "plugin", "shared library registering extra processes (repeatable)", cxxopts::value<std::vector<std::string>>())(
      "quiet", "no progress lines")("h,help", "show this help");
  const std::vector<NumFlag> nums = {
      {"threads", "intra-op threads", NumFlag::Int, 0, 1 << 16, false, false, "$GSDIFF_THREADS when set, else all cores", "0"},
      {"dist-timeout", "seconds a rank waits for the others (rendezvous, each all-reduce) before it stops with an "
       "error naming the silent rank", NumFlag::Real, 0, 1e7, true, false, "", "1800"}};
  add_conv_algorithm_flag(o);
  add_num_flags(o, nums);
  const auto sets = take_set_args(argc, argv);  // before cxxopts, which splits values at commas
  auto args = parse_checked(o, argc, argv, nums);
  if (args.count("help")) {
    std::cout << o.help() << "\n";
    return 0;
  }
  if (!args.count("config")) {
    std::cerr << "gsdiff train: --config is required\n" << o.help() << "\n";
    return 2;
  }
  check_input_files(args, {"config", "plugin"});
  if (args["resume"].as<std::string>() != "auto" && !args["resume"].as<std::string>().empty())
    require_input_file("resume", args["resume"].as<std::string>());
  set_threads(args["threads"].as<int>());
  apply_conv_algorithm_flag(args);
  register_builtins();
  if (args.count("plugin"))
    for (const auto& p : args["plugin"].as<std::vector<std::string>>()) load_plugin(p);
  auto cfg = load_config(args["config"].as<std::string>(), sets);

  TrainerEnv env;
  env.out_dir = args["out"].as<std::string>();
  env.resume = args["resume"].as<std::string>();
  env.device = parse_device(args["device"].as<std::string>());
  env.verbose = !args.count("quiet");
  // Data parallel when a launcher set WORLD_SIZE > 1 (torchrun, SLURM via env, tools/launch.sh).
  dist::DistOptions dopt;
  dopt.backend = args["backend"].as<std::string>();
  dopt.device = env.device;
  dopt.timeout = std::chrono::milliseconds(static_cast<int64_t>(1000 * args["dist-timeout"].as<double>()));
  env.dist = dist::init_from_env(dopt);
  if (env.dist && env.dist->rank() == 0 && env.verbose)
    std::cerr << "data parallel: " << env.dist->world() << " ranks (" << env.dist->backend() << ")\n";
  install_stop_handlers();  // before the trainer: a signal while it loads still stops after one step
  Trainer trainer(cfg, env);
  trainer.on_sample = [&](Trainer& t) {
    if (t.config().sample.num() <= 0 || as_classifier(t.model())) return;  // a classifier draws no samples
    SampleRequest req;
    req.num = t.config().sample.num();
    req.steps = t.config().sample.steps();
    req.seed = t.config().sample.seed();
    req.device = env.device;
    const std::string name = t.config().data.value("name", "");
    const bool is_text = name == "text8" || name == "toy-markov";
    const bool is_csv = name == "toy-gmm" || name == "toy-checkerboard";  // real vectors
    std::string path = env.out_dir + "/samples-" + std::to_string(t.step_count()) +
                       (is_text ? ".txt" : is_csv ? ".csv" : ".png");
    sample_to_file(t.config(), t.process(), t.model(), req, path);  // EMA weights when sample.ema (Trainer::run)
    if (auto* tb = t.tensorboard()) samples_to_tensorboard(*tb, path, t.step_count());
    if (env.verbose) std::cerr << "samples " << path << "\n";
  };
  trainer.run();  // the handlers stay until exit: a signal arriving now is counted, never fatal
  if (!trainer.interrupted()) return 0;
  if (env.verbose && trainer.is_main()) {
    const int sig = first_stop_signal();
    std::cerr << "gsdiff train: stopped at step " << trainer.step_count() << " ("
              << (sig ? signal_name(sig) : "a stop request from another rank") << "), checkpoint written";
    if (later_stop_signals() > 0) std::cerr << "; " << later_stop_signals() << " later signal(s) ignored while stopping";
    std::cerr << "; continue with --resume auto (exit status " << kExitInterrupted << ")\n";
  }
  return kExitInterrupted;
}

}  // namespace gsdiff::cli
