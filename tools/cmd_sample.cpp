// `gsdiff sample`: draws samples from a checkpoint and writes a PNG grid or text lines.
#include <cxxopts.hpp>

#include <iostream>

#include "core/registry.h"
#include "tools/commands.h"
#include "tools/sample_util.h"
#include "train/trainer.h"

namespace gsdiff::cli {

int cmd_sample(int argc, char** argv) {
  cxxopts::Options o(argv[0], "Sample from a checkpoint: PNG grid (images) or one line per sample (text).");
  o.add_options()("checkpoint", "checkpoint file", cxxopts::value<std::string>())(
      "sampler", "ancestral", cxxopts::value<std::string>()->default_value("ancestral"))(
      "steps", "reverse steps (0 = the process's T, or 100 in continuous time)", cxxopts::value<int64_t>())(
      "num", "number of samples", cxxopts::value<int64_t>())(
      "seed", "sampler seed", cxxopts::value<uint64_t>())(
      "no-ema", "use the raw weights instead of the EMA")(
      "out", "output file (.png for images, .txt for text)", cxxopts::value<std::string>())(
      "device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))(
      "threads", "intra-op threads (0 = all cores)", cxxopts::value<int>()->default_value("0"))(
      "plugin", "shared library registering extra processes", cxxopts::value<std::vector<std::string>>())(
      "h,help", "show this help");
  auto args = o.parse(argc, argv);
  if (args.count("help")) {
    std::cout << o.help() << "\n";
    return 0;
  }
  if (!args.count("checkpoint") || !args.count("out")) {
    std::cerr << "gsdiff sample: --checkpoint and --out are required\n";
    return 2;
  }
  if (args["sampler"].as<std::string>() != "ancestral")
    throw std::invalid_argument("--sampler: only 'ancestral' is available, got '" + args["sampler"].as<std::string>() + "'");
  set_threads(args["threads"].as<int>());
  register_builtins();
  if (args.count("plugin"))
    for (const auto& p : args["plugin"].as<std::vector<std::string>>()) load_plugin(p);
  SampleRequest req;
  req.device = parse_device(args["device"].as<std::string>());
  auto r = restore_for_inference(args["checkpoint"].as<std::string>(), !args.count("no-ema"), req.device);
  req.num = args.count("num") ? args["num"].as<int64_t>() : r.config.sample.num();
  req.steps = args.count("steps") ? args["steps"].as<int64_t>() : r.config.sample.steps();
  req.seed = args.count("seed") ? args["seed"].as<uint64_t>() : r.config.sample.seed();
  req.progress = true;
  sample_to_file(r.config, *r.process, r.model, req, args["out"].as<std::string>());
  std::cerr << "wrote " << args["out"].as<std::string>() << " (" << req.num << " samples, step " << r.step
            << (r.used_ema ? ", EMA" : "") << ")\n";
  return 0;
}

}  // namespace gsdiff::cli
