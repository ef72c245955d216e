// Numeric flags: range text for --help, a check of every given value before cxxopts parses it; --conv-algorithm.
#include "tools/flags.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "models/onednn_conv.h"

namespace gsdiff::cli {

namespace {

std::string num_text(double v, bool integer) {
  std::ostringstream os;
  if (integer && std::abs(v) < 1e18) os << static_cast<long long>(v);
  else os << v;
  return os.str();
}

bool is_integer_type(NumFlag::Type t) { return t != NumFlag::Real; }

// The value as a double when `text` is a well-formed number of the flag's type (false otherwise).
bool parse_number(const std::string& text, NumFlag::Type type, double* out) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return false;
  char* end = nullptr;
  errno = 0;
  if (type == NumFlag::Real) {
    *out = std::strtod(text.c_str(), &end);
    return errno == 0 && *end == '\0' && std::isfinite(*out);
  }
  if (type == NumFlag::UInt64) {
    if (text[0] == '-') return false;
    const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    *out = static_cast<double>(v);
    return errno == 0 && *end == '\0';
  }
  const long long v = std::strtoll(text.c_str(), &end, 10);
  *out = static_cast<double>(v);
  if (errno != 0 || *end != '\0') return false;
  return type != NumFlag::Int || (v >= std::numeric_limits<int>::min() && v <= std::numeric_limits<int>::max());
}

bool in_range(const NumFlag& f, double v) {
  const bool lo_ok = f.lo_open ? v > f.lo : v >= f.lo;
  const bool hi_ok = f.hi_open ? v < f.hi : v <= f.hi;
  return lo_ok && hi_ok;
}

void check_value(const NumFlag& f, const std::string& text) {
  double v = 0;
  if (!parse_number(text, f.type, &v) || !in_range(f, v))
    throw UsageError("--" + f.name + ": expected " + describe_range(f) + ", got '" + text + "'");
}

std::shared_ptr<cxxopts::Value> value_of(const NumFlag& f) {
  auto with_default = [&](auto v) -> std::shared_ptr<cxxopts::Value> {
    if (!f.fallback.empty()) v->default_value(f.fallback);
    return v;
  };
  switch (f.type) {
    case NumFlag::Int: return with_default(cxxopts::value<int>());
    case NumFlag::Int64: return with_default(cxxopts::value<int64_t>());
    case NumFlag::UInt64: return with_default(cxxopts::value<uint64_t>());
    case NumFlag::Real: return with_default(cxxopts::value<double>());
  }
  return nullptr;
}

}  // namespace

std::string describe_range(const NumFlag& f) {
  const bool integer = is_integer_type(f.type);
  std::string s = integer ? "an integer" : "a number";
  const bool has_lo = std::isfinite(f.lo), has_hi = std::isfinite(f.hi);
  if (has_lo && has_hi)
    s += std::string(" in ") + (f.lo_open ? "(" : "[") + num_text(f.lo, integer) + ", " + num_text(f.hi, integer) +
         (f.hi_open ? ")" : "]");
  else if (has_lo)
    s += (f.lo_open ? " > " : " >= ") + num_text(f.lo, integer);
  else if (has_hi)
    s += (f.hi_open ? " < " : " <= ") + num_text(f.hi, integer);
  return s;
}

void add_num_flags(cxxopts::Options& o, const std::vector<NumFlag>& flags) {
  auto adder = o.add_options();
  for (const auto& f : flags)
    adder(f.name, f.help + " (" + describe_range(f) + (f.zero.empty() ? "" : "; 0 = " + f.zero) + ")", value_of(f));
}

cxxopts::ParseResult parse_checked(cxxopts::Options& o, int argc, char** argv, const std::vector<NumFlag>& flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    for (const auto& f : flags) {
      const std::string flag = "--" + f.name;
      if (a == flag) {
        if (i + 1 >= argc) throw UsageError(flag + ": expected " + describe_range(f) + " after it");
        check_value(f, argv[i + 1]);
      } else if (a.rfind(flag + "=", 0) == 0) {
        check_value(f, a.substr(flag.size() + 1));
      }
    }
  }
  try {
    return o.parse(argc, argv);
  } catch (const std::exception& e) {  // unknown option, missing value, a malformed value of another flag
    throw UsageError(e.what());
  }
}

void add_conv_algorithm_flag(cxxopts::Options& o) {
  o.add_options()("conv-algorithm",
                  "direct | winograd: the CPU convolutions' algorithm. winograd runs 3x3 stride-1 convolutions as "
                  "Winograd F(4x4, 3x3) where oneDNN has the kernel (AVX-512 CPUs), with a larger float32 rounding "
                  "error; others stay direct",
                  cxxopts::value<std::string>()->default_value("direct"));
}

void apply_conv_algorithm_flag(const cxxopts::ParseResult& args) {
  const std::string name = args["conv-algorithm"].as<std::string>();
  if (name != "direct" && name != "winograd")
    throw UsageError("--conv-algorithm: expected direct or winograd, got '" + name + "'");
  if (name == "winograd" && !cached_conv_built())
    throw UsageError("--conv-algorithm winograd: this gsdiff was built without oneDNN (GSDIFF_ONEDNN; libdnnl-dev 2.x)");
  set_conv_algorithm(conv_algorithm_named(name));
}

}  // namespace gsdiff::cli
