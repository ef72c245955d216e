// Survival schedules alpha(t) and their derivatives in closed form.
#include "core/discrete_schedules.h"

#include <cmath>

#include "core/options.h"

namespace gsdiff {

using torch::Tensor;

Tensor SurvivalSchedule::alpha(const Tensor& t_in) const {
  auto t = t_in.to(torch::kFloat64);
  if (type == "linear") return 1.0 - t;
  if (type == "log-linear") return 1.0 - (1.0 - eps) * t;
  if (type == "cosine") return 2.0 * torch::sin(0.25 * M_PI * (1.0 - t)).square();  // = 1 - cos(pi/2 (1 - t)), no cancellation
  return torch::exp(-rate * t);
}

Tensor SurvivalSchedule::dalpha(const Tensor& t_in) const {
  auto t = t_in.to(torch::kFloat64);
  if (type == "linear") return -torch::ones_like(t);
  if (type == "log-linear") return torch::full_like(t, -(1.0 - eps));
  if (type == "cosine") return -0.5 * M_PI * torch::sin(0.5 * M_PI * (1.0 - t));
  return -rate * torch::exp(-rate * t);
}

SurvivalSchedule SurvivalSchedule::from_json(const nlohmann::json& j, const std::string& context) {
  SurvivalSchedule s;
  if (j.is_string()) {
    s.type = j.get<std::string>();
  } else {
    JsonReader r(j, context + " schedule");
    s.type = r.get<std::string>("type", s.type);
    s.eps = r.get<double>("eps", s.eps);
    s.rate = r.get<double>("rate", s.rate);
    r.finish();
  }
  if (s.type != "linear" && s.type != "log-linear" && s.type != "cosine" && s.type != "exponential")
    throw ConfigError(context + ": field 'schedule' must be one of linear, log-linear, cosine, exponential; got '" + s.type + "'");
  if (!(s.eps > 0 && s.eps < 1)) throw ConfigError(context + ": field 'schedule.eps' must lie in (0, 1)");
  if (!(s.rate > 0)) throw ConfigError(context + ": field 'schedule.rate' must be > 0");
  return s;
}

nlohmann::json SurvivalSchedule::to_json() const {
  nlohmann::json j{{"type", type}};
  if (type == "log-linear") j["eps"] = eps;
  if (type == "exponential") j["rate"] = rate;
  return j;
}

}  // namespace gsdiff
