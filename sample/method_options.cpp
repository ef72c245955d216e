// Parsing each sampler's own options from JSON, with errors that name the sampler and its options.
#include "sample/method_options.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "sample/masked_step.h"

namespace gsdiff {

namespace {

std::string listed(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& n : v) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}

// Every key of j is one of `known`, and j is an object (or null: no options).
void check_keys(const std::string& sampler, const nlohmann::json& j, const std::vector<std::string>& known) {
  if (j.is_null()) return;
  if (!j.is_object()) throw std::invalid_argument("sampler '" + sampler + "': its options must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end())
      throw std::invalid_argument("sampler '" + sampler + "' has no option '" + it.key() + "'; its options: " + listed(known));
}

double number(const std::string& sampler, const nlohmann::json& j, const std::string& key, double fallback, double lo) {
  if (j.is_null() || !j.contains(key)) return fallback;
  if (!j.at(key).is_number() || !(j.at(key).get<double>() >= lo))
    throw std::invalid_argument("sampler '" + sampler + "': option '" + key + "' must be a number >= " + std::to_string(lo));
  return j.at(key).get<double>();
}

}  // namespace

std::vector<std::string> method_option_names(const std::string& name) {
  if (name == "ddim") return {"eta"};
  if (name == "pc") return {"snr", "corrector_steps"};
  if (name == "tau-leaping") return {"ordinal"};
  if (name == "heun") return {"s_churn", "s_tmin", "s_tmax", "s_noise"};
  if (name == "dpm-solver++") return {"order", "eta"};
  if (name == "ancestral" || name == "mdlm-cached")  // absorbing (masked_step.h)
    return {"remask", "eta", "unmask", "loop", "t_on", "t_off", "alpha_on"};
  return {};
}

DdimOptions ddim_options(const nlohmann::json& j) {
  check_keys("ddim", j, method_option_names("ddim"));
  return DdimOptions().eta(number("ddim", j, "eta", DdimOptions().eta(), 0.0));
}

PcOptions pc_options(const nlohmann::json& j) {
  check_keys("pc", j, method_option_names("pc"));
  PcOptions o;
  o.snr(number("pc", j, "snr", o.snr(), 0.0));
  const double n = number("pc", j, "corrector_steps", double(o.corrector_steps()), 0.0);
  if (n != double(int64_t(n))) throw std::invalid_argument("sampler 'pc': option 'corrector_steps' must be an integer");
  return o.corrector_steps(int64_t(n));
}

TauLeapingOptions tau_leaping_options(const nlohmann::json& j) {
  check_keys("tau-leaping", j, method_option_names("tau-leaping"));
  if (j.is_null() || !j.contains("ordinal")) return {};
  if (!j.at("ordinal").is_boolean()) throw std::invalid_argument("sampler 'tau-leaping': option 'ordinal' must be true or false");
  return TauLeapingOptions().ordinal(j.at("ordinal").get<bool>());
}

HeunOptions heun_options(const nlohmann::json& j) {
  check_keys("heun", j, method_option_names("heun"));
  HeunOptions o;
  o.s_churn(number("heun", j, "s_churn", o.s_churn(), 0.0)).s_tmin(number("heun", j, "s_tmin", o.s_tmin(), 0.0));
  o.s_tmax(number("heun", j, "s_tmax", o.s_tmax(), 0.0)).s_noise(number("heun", j, "s_noise", o.s_noise(), 0.0));
  if (!(o.s_tmin() <= o.s_tmax())) throw std::invalid_argument("sampler 'heun': option 's_tmin' must not exceed 's_tmax'");
  return o;
}

DpmSolverOptions dpm_solver_options(const nlohmann::json& j) {
  check_keys("dpm-solver++", j, method_option_names("dpm-solver++"));
  DpmSolverOptions o;
  const double order = number("dpm-solver++", j, "order", double(o.order()), 0.0);
  if (order != 2.0 && order != 3.0) throw std::invalid_argument("sampler 'dpm-solver++': option 'order' must be 2 or 3");
  return o.order(int64_t(order)).eta(number("dpm-solver++", j, "eta", o.eta(), 0.0));
}

void validate_method_options(const std::string& name, const nlohmann::json& j) {
  if (name == "ddim") ddim_options(j);
  else if (name == "pc") pc_options(j);
  else if (name == "tau-leaping") tau_leaping_options(j);
  else if (name == "heun") heun_options(j);
  else if (name == "dpm-solver++") dpm_solver_options(j);
  else if (name == "ancestral" || name == "mdlm-cached") masked_options(name, j);
  else check_keys(name, j, {});
}

nlohmann::json to_json(const DdimOptions& o) { return {{"eta", o.eta()}}; }
nlohmann::json to_json(const PcOptions& o) { return {{"snr", o.snr()}, {"corrector_steps", o.corrector_steps()}}; }
nlohmann::json to_json(const TauLeapingOptions& o) { return {{"ordinal", o.ordinal()}}; }
nlohmann::json to_json(const HeunOptions& o) {
  nlohmann::json j = {{"s_churn", o.s_churn()}, {"s_tmin", o.s_tmin()}, {"s_noise", o.s_noise()}};
  if (std::isfinite(o.s_tmax())) j["s_tmax"] = o.s_tmax();  // JSON has no infinity: absent = no upper bound
  return j;
}
nlohmann::json to_json(const DpmSolverOptions& o) { return {{"order", o.order()}, {"eta", o.eta()}}; }

}  // namespace gsdiff
