// `gsdiff export`: a checkpoint as a TorchScript module with the process and data description inside.
#include <cxxopts.hpp>

#include <iostream>
#include <sstream>

#include "core/registry.h"
#include "data/factory.h"
#include "sample/export.h"
#include "tools/commands.h"
#include "tools/flags.h"
#include "tools/input_files.h"
#include "train/trainer.h"

namespace gsdiff::cli {

namespace {

std::vector<int64_t> parse_shape(const std::string& s) {
  auto fail = [&] { throw UsageError("--data-shape: expected positive integers separated by commas, e.g. 3,32,32, got '" + s + "'"); };
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      fail();
    }
    if (used != item.size() || v < 1) fail();
    out.push_back(v);
  }
  if (out.empty()) fail();
  return out;
}

}  // namespace

int cmd_export(int argc, char** argv) {
  cxxopts::Options o(argv[0], "Export a checkpoint as TorchScript: forward(x_t, t) -> network output, with gsdiff.json "
                              "(process, parameterisation, data shape, alphabet, model) inside the archive.");
  o.add_options()("checkpoint", "checkpoint file", cxxopts::value<std::string>())(
      "ema", "export the EMA weights")(
      "out", "output file (model.pt)", cxxopts::value<std::string>())(
      "data-shape", "one example's shape, e.g. 3,32,32 (default: from the config's data)", cxxopts::value<std::string>())(
      "plugin", "shared library registering extra processes", cxxopts::value<std::vector<std::string>>())(
      "h,help", "show this help");
  auto args = parse_checked(o, argc, argv, {});
  if (args.count("help")) {
    std::cout << o.help() << "\n";
    return 0;
  }
  if (!args.count("checkpoint") || !args.count("out")) {
    throw UsageError("--checkpoint and --out are required");
  }
  check_input_files(args, {"checkpoint", "plugin"});
  register_builtins();
  if (args.count("plugin"))
    for (const auto& p : args["plugin"].as<std::vector<std::string>>()) load_plugin(p);
  auto r = restore_for_inference(args["checkpoint"].as<std::string>(), args.count("ema") > 0, torch::kCPU);
  std::vector<int64_t> shape;
  std::string alphabet;
  if (args.count("data-shape")) {
    shape = parse_shape(args["data-shape"].as<std::string>());
  } else {
    auto ds = data::make_dataset(eval_data_config(r.config));
    shape = ds->example_shape();
    if (ds->kind() == data::DataKind::Tokens && ds->categories() == 27) alphabet = "abcdefghijklmnopqrstuvwxyz ";
  }
  auto pj = r.process->options_json();
  pj["name"] = r.process->name();
  auto meta = export_meta(pj, r.model->config(), shape, alphabet);
  meta["ema"] = r.used_ema;
  meta["step"] = r.step;
  std::vector<int64_t> ex{2};
  ex.insert(ex.end(), shape.begin(), shape.end());
  // A prior draw has the state's shape and dtype (gaussian-embed's state is [2, L, d], not the data's [2, L]).
  auto gen = at::detail::createCPUGenerator(0);
  auto x = r.process->sample_prior(ex, r.process->space() == Space::Continuous ? torch::kFloat32 : torch::kLong, gen);
  auto t = torch::full({2}, 0.5);
  auto est = r.model->self_conditioned() ? example_estimate(*r.process, r.model, x, t) : torch::Tensor();
  export_model(r.model, meta, x, t, args["out"].as<std::string>(), est);
  std::cerr << "wrote " << args["out"].as<std::string>() << " (step " << r.step << (r.used_ema ? ", EMA" : "") << ")\n";
  return 0;
}

}  // namespace gsdiff::cli
