// Numeric command-line flags declared with their range: stated in --help, checked before parsing, named in errors;
// and --conv-algorithm, shared by the commands that run a network.
#pragma once
#include <cxxopts.hpp>

#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace gsdiff::cli {

// A mistake on the command line: main() prints "gsdiff <command>: error: ..." and exits with status 2.
struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// One numeric flag. The cxxopts value type follows `type`; the range is inclusive unless *_open.
struct NumFlag {
  enum Type { Int, Int64, UInt64, Real };
  NumFlag(std::string name_, std::string help_, Type type_, double lo_, double hi_, bool lo_open_ = false,
          bool hi_open_ = false, std::string zero_ = "", std::string fallback_ = "")
      : name(std::move(name_)), help(std::move(help_)), type(type_), lo(lo_), hi(hi_), lo_open(lo_open_),
        hi_open(hi_open_), zero(std::move(zero_)), fallback(std::move(fallback_)) {}
  std::string name, help;
  Type type;
  double lo, hi;         // +-infinity: unbounded
  bool lo_open, hi_open;
  std::string zero;      // what 0 means, for --help ("" when 0 is not special)
  std::string fallback;  // the default value's text ("" = no default)
};

// "an integer >= 1", "a number in (0, 1)": the range as --help and errors state it.
std::string describe_range(const NumFlag& f);
// Adds each flag to `o` with its help followed by the range and what 0 means.
void add_num_flags(cxxopts::Options& o, const std::vector<NumFlag>& flags);
// Checks every given value of `flags` in argv (--name VALUE and --name=VALUE), then parses with cxxopts. A value
// that is not a number of the flag's type, or is out of range, and any cxxopts parse error throw UsageError naming
// the flag: "--num: expected an integer >= 1, got '-3'".
cxxopts::ParseResult parse_checked(cxxopts::Options& o, int argc, char** argv, const std::vector<NumFlag>& flags);

// --conv-algorithm direct | winograd: the algorithm of the CPU convolutions (models/onednn_conv.h), for the
// commands that run a network. apply_ sets it; another value throws UsageError naming the flag and both choices.
void add_conv_algorithm_flag(cxxopts::Options& o);
void apply_conv_algorithm_flag(const cxxopts::ParseResult& args);

}  // namespace gsdiff::cli
