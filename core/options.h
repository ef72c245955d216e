// Typed options from JSON: a reader that checks types and ranges and rejects unknown keys.
#pragma once
#include <nlohmann/json.hpp>

#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace gsdiff {

// Error raised for a bad configuration value; the message names the field and what was allowed.
struct ConfigError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Reads one JSON object field by field; `finish()` rejects keys nobody asked for.
// Usage: JsonReader r(j, "process 'gaussian-vp'"); opts.steps(r.get("steps", opts.steps())); r.finish();
class JsonReader {
 public:
  JsonReader(const nlohmann::json& j, std::string context) : j_(j), ctx_(std::move(context)) {
    if (!j_.is_object() && !j_.is_null()) fail("", "expected a JSON object, got " + std::string(j_.type_name()));
  }

  bool has(const std::string& key) const { return j_.is_object() && j_.contains(key); }

  template <typename T>
  T get(const std::string& key, const T& fallback) {
    seen_.insert(key);
    if (!has(key)) return fallback;
    return convert<T>(key, j_.at(key));
  }

  template <typename T>
  T require(const std::string& key) {
    seen_.insert(key);
    if (!has(key)) fail(key, "is required");
    return convert<T>(key, j_.at(key));
  }

  const nlohmann::json& raw(const std::string& key) {
    seen_.insert(key);
    static const nlohmann::json null_json;
    return has(key) ? j_.at(key) : null_json;
  }

  // A string field restricted to a set of values.
  std::string choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& allowed) {
    auto v = get<std::string>(key, fallback);
    for (const auto& a : allowed)
      if (a == v) return v;
    fail(key, "must be one of " + join(allowed) + ", got '" + v + "'");
    return v;
  }

  void finish() const {
    if (!j_.is_object()) return;
    std::vector<std::string> known(seen_.begin(), seen_.end());
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key())) fail(it.key(), "is not a known field; known fields: " + join(known));
  }

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw ConfigError(ctx_ + (key.empty() ? "" : ": field '" + key + "'") + " " + what);
  }

  static std::string join(const std::vector<std::string>& xs) {
    std::ostringstream os;
    for (size_t i = 0; i < xs.size(); ++i) os << (i ? ", " : "") << xs[i];
    return os.str();
  }

 private:
  template <typename T>
  T convert(const std::string& key, const nlohmann::json& v) const {
    try {
      if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) throw std::runtime_error("expected a boolean");
      } else if constexpr (std::is_integral_v<T>) {
        if (!v.is_number_integer()) throw std::runtime_error("expected an integer");
      } else if constexpr (std::is_floating_point_v<T>) {
        if (!v.is_number()) throw std::runtime_error("expected a number");
      } else if constexpr (std::is_same_v<T, std::string>) {
        if (!v.is_string()) throw std::runtime_error("expected a string");
      }
      return v.get<T>();
    } catch (const std::exception& e) {
      fail(key, std::string("has the wrong type: ") + e.what() + ", got " + v.dump());
    }
  }

  const nlohmann::json& j_;
  std::string ctx_;
  std::set<std::string> seen_;
};

}  // namespace gsdiff
