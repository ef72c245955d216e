// `gsdiff info`: registered processes (with default options) and models; with --config, the resolved config.
#include <cxxopts.hpp>

#include <iostream>
#include <map>

#include "core/registry.h"
#include "models/denoiser.h"
#include "models/classifier.h"
#include "models/transformer.h"
#include "models/unet.h"
#include "tools/cli_args.h"
#include "tools/commands.h"
#include "tools/flags.h"
#include "tools/input_files.h"
#include "sample/method_options.h"
#include "sample/sampler.h"
#include "sample/step_guidance.h"
#include "train/objectives.h"
#include "train/trainer.h"

namespace gsdiff::cli {

namespace {

// The samplers by space with their own options (gsdiff sample's flags), the objectives, and discrete guidance.
void print_samplers_objectives_guidance() {
  std::cout << "samplers (gsdiff sample --sampler; a sampler's own options in brackets):\n";
  for (const auto& [space, label] : {std::pair{Space::Continuous, "continuous"}, std::pair{Space::Discrete, "discrete"}}) {
    std::cout << "  " << label << ":";
    for (const auto& n : sampler_names(space)) {
      std::cout << " " << n;
      const auto opts = method_option_names(n);
      if (opts.empty() || (space == Space::Continuous && n == "ancestral")) continue;  // its options are absorbing's
      std::cout << " [";
      for (size_t i = 0; i < opts.size(); ++i) std::cout << (i ? ", " : "") << opts[i];
      std::cout << "]";
    }
    std::cout << "\n";
  }
  std::cout << "objectives (objective.name):\n";
  for (const auto& [n, what] : objective_descriptions()) std::cout << "  " << n << ": " << what << "\n";
  std::cout << "guidance of discrete models (Schiff et al. 2025):\n"
               "  d-cfg: --class C --guidance GAMMA on a class-conditional model\n"
               "  d-cbg: --classifier CLF --class C --guidance GAMMA; --classifier-approx";
  for (const auto& a : dcbg_approximations()) std::cout << " " << a;
  std::cout << "\n";
}

}  // namespace

int cmd_info(int argc, char** argv) {
  cxxopts::Options o(argv[0], "List registered processes and models, or show a resolved config.");
  o.add_options()("config", "config file: print it resolved, with the model's parameter count", cxxopts::value<std::string>())(
      "set", "override a config value: key.path=value (repeatable)", cxxopts::value<std::vector<std::string>>())(
      "plugin", "shared library registering extra processes", cxxopts::value<std::vector<std::string>>())(
      "h,help", "show this help");
  const auto sets = take_set_args(argc, argv);  // before cxxopts, which splits values at commas
  auto args = parse_checked(o, argc, argv, {});
  if (args.count("help")) {
    std::cout << o.help() << "\n";
    return 0;
  }
  check_input_files(args, {"config", "plugin"});
  register_builtins();
  if (args.count("plugin"))
    for (const auto& p : args["plugin"].as<std::vector<std::string>>()) load_plugin(p);
  if (args.count("config")) {
    auto cfg = load_config(args["config"].as<std::string>(), sets);
    auto process = build_process(cfg);
    auto model = build_model(cfg);
    auto j = cfg.resolved;
    j["process"] = process->options_json();
    j["process"]["name"] = process->name();
    j["model"] = model->config();
    j["parameters"] = count_parameters(*model);
    std::cout << j.dump(2) << std::endl;
    return 0;
  }
  auto& reg = ProcessRegistry::global();
  std::cout << "processes:\n";
  for (const auto& n : reg.names()) {
    const auto& e = reg.entry(n);
    std::cout << "  " << n << ": " << e.description << "\n    defaults: " << e.defaults.dump() << "\n";
  }
  // The built-ins' defaults, with the options that their config() writes only when set.
  auto unet = unet_options_to_json(UNetOptions()), transformer = transformer_options_to_json(TransformerOptions());
  unet["self_condition"] = transformer["self_condition"] = false;  // Chen et al. 2022: feed back the x0 estimate
  transformer["time_conditioning"] = true;
  const ClassifierOptions c;  // D-CBG's noisy-input classifier (Schiff et al. 2025); trains with objective classifier
  const nlohmann::json classifier = {{"type", "classifier"}, {"classes", c.classes()}, {"features", c.features()}, {"trunk", c.trunk()}};
  const std::map<std::string, nlohmann::json> defaults = {{"unet", unet}, {"transformer", transformer}, {"classifier", classifier}};
  std::cout << "models:\n";
  for (const auto& n : model_names()) {
    std::cout << "  " << n << "\n";
    if (defaults.count(n)) std::cout << "    defaults: " << defaults.at(n).dump() << "\n";
  }
  print_samplers_objectives_guidance();
  return 0;
}

}  // namespace gsdiff::cli
