// Entry point of the gsdiff command: dispatches `gsdiff <command> [options]`.
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <thread>

#include "tools/commands.h"
#include "tools/flags.h"

namespace gsdiff::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"train", "train a model from a JSON config (checkpoints, metrics, sample grids)", cmd_train},
      {"eval", "likelihood bound of a checkpoint (bits/dim or bits/char, with standard error)", cmd_eval},
      {"sample", "sample from a checkpoint: PNG grid or text lines", cmd_sample},
      {"export", "TorchScript export of a checkpoint (forward(x_t, t), process JSON inside)", cmd_export},
      {"info", "list registered processes and models; with --config, the resolved config and parameter count", cmd_info},
      {"data", "data utilities: text8ify INPUT OUTPUT, check CONFIG", cmd_data},
      {"bench", "train-step / sampling throughput, peak memory and FLOP/s of a config, as JSON", cmd_bench},
  };
  return table;
}

// --threads N; 0 = $GSDIFF_THREADS when set (e.g. 1 under a test runner that runs several commands at once:
// two 2-thread OpenMP pools on 2 cores spin against each other, one config test measured 28x slower), else every core.
void set_threads(int requested) {
  const char* env = std::getenv("GSDIFF_THREADS");
  int n = requested > 0 ? requested : env && std::atoi(env) > 0 ? std::atoi(env) : static_cast<int>(std::thread::hardware_concurrency());
  if (n < 1) n = 1;
  torch::set_num_threads(n);
}

}  // namespace gsdiff::cli

static void print_usage() {
  std::cout << "gsdiff: diffusion models over general state spaces\n\n"
               "usage: gsdiff <command> [options]   (gsdiff <command> --help for its options)\n\ncommands:\n";
  for (const auto& c : gsdiff::cli::commands()) std::cout << "  " << c.name << std::string(10 - std::strlen(c.name), ' ') << c.summary << "\n";
}

int main(int argc, char** argv) {
  gsdiff::cli::tune_allocator();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : gsdiff::cli::commands()) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    std::string prog = std::string("gsdiff ") + c.name;
    argv[1] = prog.data();
    // Errors a user can trigger end here as one line, never a C++ backtrace: a bad flag exits with 2, the rest 1.
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const gsdiff::cli::UsageError& e) {
      std::cerr << "gsdiff " << c.name << ": error: " << e.what() << " (see gsdiff " << c.name << " --help)\n";
      return 2;
    } catch (const c10::Error& e) {  // what() would append LibTorch's C++ backtrace
      std::cerr << "gsdiff " << c.name << ": error: " << e.what_without_backtrace() << "\n";
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "gsdiff " << c.name << ": error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "gsdiff: unknown command '" << argv[1] << "'; known commands:";
  for (const auto& c : gsdiff::cli::commands()) std::cerr << " " << c.name;
  std::cerr << "\n";
  return 2;
}
