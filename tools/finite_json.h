// The commands' results are numbers or an error: never nan, inf or null where a number belongs.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace gsdiff::cli {

// Throws std::runtime_error naming `what` and the dotted key of the first non-finite number in j (nlohmann
// would print it as null).
void require_finite(const nlohmann::json& j, const std::string& what);

}  // namespace gsdiff::cli
