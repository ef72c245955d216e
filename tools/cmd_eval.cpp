// `gsdiff eval`: the likelihood bound of a checkpoint on a data split (a classifier's held-out cross-entropy), as one JSON object.
#include <cxxopts.hpp>

#include <iostream>
#include <limits>

#include "core/registry.h"
#include "data/factory.h"
#include "tools/commands.h"
#include "tools/flags.h"
#include "tools/input_files.h"
#include "tools/sample_util.h"
#include "sample/guidance.h"
#include "tools/eval_extra.h"
#include "tools/finite_json.h"
#include "models/classifier.h"
#include "train/evaluate_classifier.h"
#include "train/trainer.h"

namespace gsdiff::cli {

namespace {

// The flags: the checkpoint, the data split, and the estimator's options (numeric ones validated where parsed).
cxxopts::ParseResult parse_eval_flags(cxxopts::Options& o, int argc, char** argv) {
  o.add_options()("checkpoint", "checkpoint file", cxxopts::value<std::string>())(
      "split", "data split to score (test | valid | train); default: the config's eval_data", cxxopts::value<std::string>())(
      "exact", "exact bound: all T terms (discrete time) or adaptive Gauss-Legendre in t to --quadrature-tol (continuous)")(
      "time-sampling", "Monte Carlo t proposal: auto | uniform | logsnr (importance sampling in log-SNR)", cxxopts::value<std::string>())(
      "per-example", "also print each example's bound (\"per_example\", in the unit, in data order)")(
      "ema", "use the EMA weights (default: the config's eval.ema)", cxxopts::value<bool>())(
      "device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))(
      "plugin", "shared library registering extra processes", cxxopts::value<std::vector<std::string>>())(
      "ode", "exact likelihood through the probability-flow ODE (continuous processes; Hutchinson trace)")(
      "ode-integrator", "rk4 | heun", cxxopts::value<std::string>()->default_value("rk4"))(
      "ode-trace", "rademacher | gaussian | exact", cxxopts::value<std::string>()->default_value("rademacher"))(
      "low-noise-checkpoint", "expert switching: this checkpoint serves t <= --switch", cxxopts::value<std::string>())(
      "h,help", "show this help");
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<NumFlag> nums = {
      {"limit", "score only the first N examples", NumFlag::Int64, 0, 1e12, false, false, "all"},
      {"quadrature-tol", "--exact, continuous time: tolerance of the quadrature error, bits/dim", NumFlag::Real, 0, inf, true},
      {"max-nodes", "--exact, continuous time: most quadrature nodes per batch (the first graded panels take 84)",
       NumFlag::Int64, 84, 1e9},
      {"quadrature-nodes", "--exact, continuous time: a fixed N-node Gauss-Legendre rule instead (no error estimate)",
       NumFlag::Int64, 1, 1e9},
      {"noise-samples", "--exact, continuous time: x_t noise streams per example (each fixed across nodes)",
       NumFlag::Int64, 1, 1e9},
      {"time-samples", "Monte Carlo: t per example (per pass)", NumFlag::Int64, 1, 1e9},
      {"target-stderr", "Monte Carlo: add passes over the data until the standard error is <= this (bits/dim)",
       NumFlag::Real, 0, inf, false, false, "one pass"},
      {"max-passes", "most passes with --target-stderr", NumFlag::Int64, 1, 1e9},
      {"batch-size", "examples per batch", NumFlag::Int64, 1, 1e9},
      {"seed", "seed of the Monte-Carlo generator", NumFlag::UInt64, 0, inf},
      {"threads", "intra-op threads", NumFlag::Int, 0, 1 << 16, false, false, "$GSDIFF_THREADS when set, else all cores", "0"},
      {"ode-steps", "ODE integrator steps", NumFlag::Int64, 1, 1e9, false, false, "", "100"},
      {"switch", "expert switching time tau", NumFlag::Real, 0, 1, true, true, "", "0.5"}};
  add_conv_algorithm_flag(o);
  add_num_flags(o, nums);
  return parse_checked(o, argc, argv, nums);
}

// The config's eval options with the flags laid over them.
EvalOptions eval_options(EvalOptions e, const cxxopts::ParseResult& args) {
  if (args.count("limit")) e.limit(args["limit"].as<int64_t>());
  if (args.count("exact")) e.exact(true);
  if (args.count("per-example")) e.per_example(true);
  if (args.count("time-samples")) e.time_samples(args["time-samples"].as<int64_t>());
  if (args.count("quadrature-tol")) e.quadrature_tol(args["quadrature-tol"].as<double>());
  if (args.count("max-nodes")) e.max_nodes(args["max-nodes"].as<int64_t>());
  if (args.count("noise-samples")) e.noise_samples(args["noise-samples"].as<int64_t>());
  if (args.count("quadrature-nodes")) {
    e.quadrature_nodes(args["quadrature-nodes"].as<int64_t>());
    e.exact(true);
  }
  if (args.count("time-sampling")) e.time_sampling(args["time-sampling"].as<std::string>());
  if (args.count("target-stderr")) e.target_stderr(args["target-stderr"].as<double>());
  if (args.count("max-passes")) e.max_passes(args["max-passes"].as<int64_t>());
  check_eval_options(e);
  if (args.count("ema")) e.ema(args["ema"].as<bool>());
  if (args.count("batch-size")) e.batch_size(args["batch-size"].as<int64_t>());
  if (args.count("seed")) e.seed(args["seed"].as<uint64_t>());
  return e;
}

// The bound: the model's own ELBO, or (--ode, --low-noise-checkpoint) that of a composed DenoiseFn (issue #7).
BoundResult score(Restored& r, const data::Dataset& ds, const EvalOptions& e,
                  const cxxopts::ParseResult& args, const torch::Device& device) {
  if (!args.count("ode") && !args.count("low-noise-checkpoint")) return evaluate_bound(*r.process, r.model, ds, e, device);
  DenoiseFn f = bound_denoise_fn(*r.process, r.model);
  if (args.count("low-noise-checkpoint")) {
    auto low = restore_for_inference(args["low-noise-checkpoint"].as<std::string>(), e.ema(), device);
    if (low.process->options_json() != r.process->options_json())
      throw std::invalid_argument("--low-noise-checkpoint: the two experts must share one process");
    f = switch_experts(bound_denoise_fn(*r.process, r.model), bound_denoise_fn(*low.process, low.model),
                       args["switch"].as<double>());
  }
  r.model->eval();
  if (!args.count("ode")) return evaluate_bound_fn(*r.process, f, ds, e, device);
  auto o = OdeLikelihoodOptions().steps(args["ode-steps"].as<int64_t>()).integrator(args["ode-integrator"].as<std::string>())
               .trace(args["ode-trace"].as<std::string>());
  return evaluate_ode(*r.process, f, ds, e, o, device);
}

// A classifier (model.type classifier) has no likelihood bound: eval reports its held-out cross-entropy and accuracy,
// and the bound's estimator flags do not apply.
void check_classifier_flags(const cxxopts::ParseResult& args) {
  for (const char* f : {"exact", "time-sampling", "ode", "ode-integrator", "ode-trace", "low-noise-checkpoint", "quadrature-tol",
                        "max-nodes", "quadrature-nodes", "noise-samples", "target-stderr", "max-passes", "ode-steps", "switch"})
    if (args.count(f))
      throw std::invalid_argument(std::string("--") + f + ": a classifier checkpoint has no likelihood bound; eval reports its "
                                  "held-out cross-entropy over --time-samples draws of t per example");
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  cxxopts::Options o(argv[0], "Upper bound on -log p(x) (bits/dim or bits/char, with standard error) of a checkpoint; "
                             "for a classifier checkpoint, its held-out cross-entropy (nats) and accuracy on x_t.");
  auto args = parse_eval_flags(o, argc, argv);
  if (args.count("help")) {
    std::cout << o.help() << "\n";
    return 0;
  }
  if (!args.count("checkpoint")) throw UsageError("--checkpoint is required");
  check_input_files(args, {"checkpoint", "low-noise-checkpoint", "plugin"});
  set_threads(args["threads"].as<int>());
  apply_conv_algorithm_flag(args);
  register_builtins();
  if (args.count("plugin"))
    for (const auto& p : args["plugin"].as<std::vector<std::string>>()) load_plugin(p);
  auto device = parse_device(args["device"].as<std::string>());
  // Peek at the config for the eval defaults, then restore with the chosen weights.
  const auto e = eval_options(restore_for_inference(args["checkpoint"].as<std::string>(), false, torch::kCPU).config.eval, args);
  auto r = restore_for_inference(args["checkpoint"].as<std::string>(), e.ema(), device);
  auto dcfg = eval_data_config(r.config);
  if (args.count("split")) dcfg["split"] = args["split"].as<std::string>();
  auto ds = data::make_dataset(dcfg);
  const bool classifier = as_classifier(r.model) != nullptr;
  if (classifier) check_classifier_flags(args);
  auto j = classifier ? evaluate_classifier(*r.process, r.model, *ds, e, device).to_json() : score(r, *ds, e, args, device).to_json();
  j["checkpoint"] = args["checkpoint"].as<std::string>();
  j["step"] = r.step;
  j["ema"] = r.used_ema;
  j["data"] = dcfg;
  if (args.count("low-noise-checkpoint")) j["switch"] = args["switch"].as<double>();
  require_finite(j, "gsdiff eval");  // a non-finite bound is an error, never "bound": null
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace gsdiff::cli
