// Strict JSON-to-options reader for model configs: type-checked fields, unknown keys rejected.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace gsdiff {

// A bad model configuration; the message names the offending key and what was expected.
struct ModelConfigError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Reads one JSON object key by key into option fields; finish() rejects keys never read.
// Usage: ModelJsonReader r(j, "unet"); r.read("ch", o.ch()); ...; r.finish();
class ModelJsonReader {
 public:
  ModelJsonReader(const nlohmann::json& j, std::string context) : j_(j), ctx_(std::move(context)) {
    if (!j_.is_object() && !j_.is_null())
      throw ModelConfigError(ctx_ + ": expected a JSON object, got " + j_.type_name());
  }

  // Marks a key as known without reading it (e.g. "type", consumed by the registry).
  void ignore(const std::string& key) { seen_.insert(key); }

  // If `key` is present, converts it into `out` (type-checked); otherwise leaves `out` alone.
  template <typename T>
  void read(const std::string& key, T& out) {
    seen_.insert(key);
    if (!j_.is_object() || !j_.contains(key)) return;
    convert(key, j_.at(key), out);
  }

  void finish() const {
    if (!j_.is_object()) return;
    std::string known;
    for (const auto& k : seen_) known += (known.empty() ? "" : ", ") + k;
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key()))
        throw ModelConfigError(ctx_ + ": unknown key '" + it.key() + "' (known: " + known + ")");
  }

 private:
  [[noreturn]] void bad(const std::string& key, const char* want, const nlohmann::json& v) const {
    throw ModelConfigError(ctx_ + ": key '" + key + "' expects " + want + ", got " + v.dump());
  }
  void convert(const std::string& k, const nlohmann::json& v, int64_t& out) const {
    if (!v.is_number_integer()) bad(k, "an integer", v);
    out = v.get<int64_t>();
  }
  void convert(const std::string& k, const nlohmann::json& v, double& out) const {
    if (!v.is_number()) bad(k, "a number", v);
    out = v.get<double>();
  }
  void convert(const std::string& k, const nlohmann::json& v, bool& out) const {
    if (!v.is_boolean()) bad(k, "a boolean", v);
    out = v.get<bool>();
  }
  void convert(const std::string& k, const nlohmann::json& v, std::string& out) const {
    if (!v.is_string()) bad(k, "a string", v);
    out = v.get<std::string>();
  }
  void convert(const std::string& k, const nlohmann::json& v, std::vector<int64_t>& out) const {
    if (!v.is_array()) bad(k, "an array of integers", v);
    std::vector<int64_t> r;
    for (const auto& e : v) {
      if (!e.is_number_integer()) bad(k, "an array of integers", v);
      r.push_back(e.get<int64_t>());
    }
    out = r;
  }

  const nlohmann::json& j_;
  std::string ctx_;
  std::set<std::string> seen_;
};

}  // namespace gsdiff
