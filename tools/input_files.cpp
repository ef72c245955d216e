// File-argument and eval-option checks shared by the gsdiff commands.
#include "tools/input_files.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <typeinfo>
#include <vector>

namespace gsdiff::cli {

void require_input_file(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  auto fail = [&](const std::string& why) { throw std::invalid_argument("--" + flag + " '" + path + "': " + why); };
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail("no such file");
  if (fs::is_directory(st)) fail("is a directory; expected a file");
  std::ifstream in(path, std::ios::binary);
  char c;
  if (!in || (!in.get(c) && !in.eof())) fail("cannot be read (permissions?)");
}

void check_input_files(const cxxopts::ParseResult& args, std::initializer_list<const char*> flags) {
  for (const char* flag : flags) {
    if (!args.count(flag)) continue;
    try {
      require_input_file(flag, args[flag].as<std::string>());
    } catch (const std::bad_cast&) {
      for (const auto& p : args[flag].as<std::vector<std::string>>()) require_input_file(flag, p);
    }
  }
}

void check_eval_options(const EvalOptions& e) {
  auto fail = [](const std::string& flag, const std::string& what) { throw std::invalid_argument("--" + flag + ": " + what); };
  if (e.time_samples() < 1) fail("time-samples", "must be >= 1");
  if (!(e.quadrature_tol() > 0)) fail("quadrature-tol", "must be > 0 (bits per dimension)");
  if (e.max_nodes() < 84) fail("max-nodes", "must be >= 84 (the first graded panels take 84 nodes)");
  if (e.noise_samples() < 1) fail("noise-samples", "must be >= 1");
  if (e.quadrature_nodes() < 0) fail("quadrature-nodes", "must be >= 1");
  if (e.time_sampling() != "auto" && e.time_sampling() != "uniform" && e.time_sampling() != "logsnr")
    fail("time-sampling", "must be auto, uniform or logsnr, got '" + e.time_sampling() + "'");
  if (e.target_stderr() < 0) fail("target-stderr", "must be >= 0");
  if (e.max_passes() < 1) fail("max-passes", "must be >= 1");
}

}  // namespace gsdiff::cli
