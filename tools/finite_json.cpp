// A walk over a result object that refuses non-finite numbers, naming their key.
#include "tools/finite_json.h"

#include <cmath>
#include <stdexcept>

namespace gsdiff::cli {

namespace {
void walk(const nlohmann::json& j, const std::string& path, const std::string& what) {
  if (j.is_number_float() && !std::isfinite(j.get<double>()))
    throw std::runtime_error(what + ": result '" + path + "' is not finite (" + std::to_string(j.get<double>()) + ")");
  if (j.is_object())
    for (auto it = j.begin(); it != j.end(); ++it) walk(it.value(), path.empty() ? it.key() : path + "." + it.key(), what);
  if (j.is_array())
    for (size_t i = 0; i < j.size(); ++i) walk(j[i], path + "[" + std::to_string(i) + "]", what);
}
}  // namespace

void require_finite(const nlohmann::json& j, const std::string& what) { walk(j, "", what); }

}  // namespace gsdiff::cli
