// Command-line arguments cxxopts must not split: repeated `--set key=value` overrides whose JSON values hold commas.
#pragma once
#include <string>
#include <vector>

namespace gsdiff::cli {

// Removes every `--set VALUE` and `--set=VALUE` from argv (argc shrinks; argv keeps its order) and returns the
// values verbatim. cxxopts splits vector values at commas, so `--set model.ch_mult=[1,2]` would reach the
// config as two broken assignments; taking them out first keeps JSON lists and objects whole.
// A trailing `--set` with no value throws std::invalid_argument naming the flag.
std::vector<std::string> take_set_args(int& argc, char** argv);

}  // namespace gsdiff::cli
