// Repeated `--set` overrides taken out of argv verbatim (cxxopts would split their JSON at commas).
#include "tools/cli_args.h"

#include <stdexcept>

namespace gsdiff::cli {

std::vector<std::string> take_set_args(int& argc, char** argv) {
  std::vector<std::string> sets;
  int out = 1;  // argv[0] stays
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {  // everything after "--" is positional: keep it as it is
      while (i < argc) argv[out++] = argv[i++];
      break;
    }
    if (a == "--set") {
      if (i + 1 >= argc) throw std::invalid_argument("--set: expected a value key.path=value after it");
      sets.emplace_back(argv[++i]);
    } else if (a.rfind("--set=", 0) == 0) {
      sets.push_back(a.substr(6));
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return sets;
}

}  // namespace gsdiff::cli
