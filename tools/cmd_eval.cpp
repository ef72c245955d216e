// `gsdiff eval`: the likelihood bound of a checkpoint on a data split, printed as one JSON object.
#include <cxxopts.hpp>

#include <iostream>

#include "core/registry.h"
#include "data/factory.h"
#include "tools/commands.h"
#include "tools/sample_util.h"
#include "train/trainer.h"

namespace gsdiff::cli {

int cmd_eval(int argc, char** argv) {
  cxxopts::Options o(argv[0], "Upper bound on -log p(x) (bits/dim or bits/char, with standard error) of a checkpoint.");
  o.add_options()("checkpoint", "checkpoint file", cxxopts::value<std::string>())(
      "split", "data split to score (test | valid | train); default: the config's eval_data", cxxopts::value<std::string>())(
      "limit", "score only the first N examples (0 = all)", cxxopts::value<int64_t>())(
      "exact", "exact bound: all T terms (discrete time) or Gauss-Legendre in t (continuous)")(
      "time-samples", "t per example (Monte Carlo) or quadrature nodes (--exact)", cxxopts::value<int64_t>())(
      "ema", "use the EMA weights (default: the config's eval.ema)", cxxopts::value<bool>())(
      "batch-size", "examples per batch", cxxopts::value<int64_t>())(
      "seed", "seed of the Monte-Carlo generator", cxxopts::value<uint64_t>())(
      "device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))(
      "threads", "intra-op threads (0 = all cores)", cxxopts::value<int>()->default_value("0"))(
      "plugin", "shared library registering extra processes", cxxopts::value<std::vector<std::string>>())(
      "h,help", "show this help");
  auto args = o.parse(argc, argv);
  if (args.count("help")) {
    std::cout << o.help() << "\n";
    return 0;
  }
  if (!args.count("checkpoint")) {
    std::cerr << "gsdiff eval: --checkpoint is required\n";
    return 2;
  }
  set_threads(args["threads"].as<int>());
  register_builtins();
  if (args.count("plugin"))
    for (const auto& p : args["plugin"].as<std::vector<std::string>>()) load_plugin(p);
  auto device = parse_device(args["device"].as<std::string>());
  // Peek at the config for the eval defaults, then restore with the chosen weights.
  auto first = restore_for_inference(args["checkpoint"].as<std::string>(), false, torch::kCPU);
  EvalOptions e = first.config.eval;
  if (args.count("limit")) e.limit(args["limit"].as<int64_t>());
  if (args.count("exact")) e.exact(true);
  if (args.count("time-samples")) e.time_samples(args["time-samples"].as<int64_t>());
  if (args.count("ema")) e.ema(args["ema"].as<bool>());
  if (args.count("batch-size")) e.batch_size(args["batch-size"].as<int64_t>());
  if (args.count("seed")) e.seed(args["seed"].as<uint64_t>());
  auto r = restore_for_inference(args["checkpoint"].as<std::string>(), e.ema(), device);
  auto dcfg = eval_data_config(r.config);
  if (args.count("split")) dcfg["split"] = args["split"].as<std::string>();
  auto ds = data::make_dataset(dcfg);
  auto bound = evaluate_bound(*r.process, r.model, *ds, e, device);
  auto j = bound.to_json();
  j["checkpoint"] = args["checkpoint"].as<std::string>();
  j["step"] = r.step;
  j["ema"] = r.used_ema;
  j["data"] = dcfg;
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace gsdiff::cli
