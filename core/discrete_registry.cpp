// Options parsing and registration of the built-in discrete processes.
#include <cmath>
#include <fstream>

#include "core/dense_kernels.h"
#include "core/discrete_flow.h"
#include "core/generalized_absorbing.h"
#include "core/mixture_kernels.h"
#include "core/options.h"
#include "core/registry.h"

namespace gsdiff {

namespace {

// Reads the fields every survival-schedule kernel shares; leaves the reader open for more.
DiscreteOptions read_discrete(JsonReader& r, int64_t default_K, const std::string& default_schedule,
                              const std::string& ctx) {
  DiscreteOptions o;
  r.get<std::string>("name", "");
  o.K(r.get<int64_t>("K", default_K));
  o.steps(r.get<int64_t>("steps", o.steps()));
  o.t_min(r.get<double>("t_min", o.t_min()));
  o.dtype(r.choice("dtype", o.dtype(), {"float32", "float64"}));
  o.parameterization(r.choice("parameterization", o.parameterization(), {"bayes", "masked"}));
  const auto& sj = r.raw("schedule");
  o.schedule(SurvivalSchedule::from_json(sj.is_null() ? nlohmann::json(default_schedule) : sj, ctx));
  if (o.K() < 2) r.fail("K", "must be >= 2, got " + std::to_string(o.K()));
  if (o.steps() < 0) r.fail("steps", "must be 0 (continuous time) or T >= 1, got " + std::to_string(o.steps()));
  if (o.t_min() < 0 || o.t_min() >= 1) r.fail("t_min", "must lie in [0, 1)");
  return o;
}

DiscreteOptions discrete_from_json(const nlohmann::json& j, const std::string& name, int64_t default_K,
                                   const std::string& default_schedule) {
  std::string ctx = "process '" + name + "'";
  JsonReader r(j, ctx);
  auto o = read_discrete(r, default_K, default_schedule, ctx);
  r.finish();
  return o;
}

}  // namespace

DiscreteFlowOptions discrete_flow_options_from_json(const nlohmann::json& j) {
  const std::string ctx = "process 'discrete-flow'";
  JsonReader r(j, ctx);
  DiscreteFlowOptions o;
  o.base(read_discrete(r, 27, "linear", ctx));
  o.noise(r.choice("noise", o.noise(), {"mask", "uniform"}));
  o.eta(r.get<double>("eta", o.eta()));
  r.finish();
  if (o.base().steps() != 0) r.fail("steps", "must be 0: discrete flow matching is a continuous-time CTMC");
  if (!(o.eta() >= 0) || !std::isfinite(o.eta())) r.fail("eta", "must be a finite number >= 0");
  return o;
}

PolyMaskOptions poly_mask_options_from_json(const nlohmann::json& j) {
  const std::string ctx = "process 'absorbing-poly'";
  JsonReader r(j, ctx);
  PolyMaskOptions o;
  o.base(read_discrete(r, 27, "linear", ctx));
  o.state_dependent(r.get<bool>("state_dependent", o.state_dependent()));
  o.w_init(r.get<double>("w_init", o.w_init()));
  o.w_values(r.get<std::vector<double>>("w_values", o.w_values()));
  r.finish();
  if (o.base().steps() != 0) r.fail("steps", "must be 0: the learned schedule trains on the continuous-time ELBO");
  if (!(o.w_init() > 0) || !std::isfinite(o.w_init())) r.fail("w_init", "must be a finite number > 0");
  const size_t n = o.state_dependent() ? size_t(o.base().K()) : 1;
  if (!o.w_values().empty() && o.w_values().size() != n)
    r.fail("w_values", "must hold " + std::to_string(n) + " exponents (K when state_dependent, else 1), got " +
           std::to_string(o.w_values().size()));
  for (double w : o.w_values())
    if (!(w > 0) || !std::isfinite(w)) r.fail("w_values", "must be finite numbers > 0");
  return o;
}

namespace {

DiscretizedGaussianOptions dgauss_from_json(const nlohmann::json& j) {
  JsonReader r(j, "process 'discretized-gaussian'");
  DiscretizedGaussianOptions o;
  r.get<std::string>("name", "");
  o.K(r.get<int64_t>("K", o.K()));
  o.steps(r.get<int64_t>("steps", o.steps()));
  o.beta_min(r.get<double>("beta_min", o.beta_min()));
  o.beta_max(r.get<double>("beta_max", o.beta_max()));
  o.dtype(r.choice("dtype", o.dtype(), {"float32", "float64"}));
  o.parameterization(r.choice("parameterization", o.parameterization(), {"bayes", "masked"}));
  r.finish();
  if (o.K() < 2) r.fail("K", "must be >= 2");
  if (o.steps() < 1) r.fail("steps", "must be >= 1 (discrete time only), got " + std::to_string(o.steps()));
  if (!(o.beta_min() > 0)) r.fail("beta_min", "must be > 0");
  if (!(o.beta_max() >= o.beta_min())) r.fail("beta_max", "must be >= beta_min");
  return o;
}

}  // namespace

RateMatrixOptions rate_matrix_options_from_json(const nlohmann::json& j) {
  std::string ctx = "process 'rate-matrix'";
  JsonReader r(j, ctx);
  RateMatrixOptions o;
  auto base = read_discrete(r, 2, "log-linear", ctx);
  std::string file = r.get<std::string>("file", "");
  nlohmann::json src = j;  // where `rates` and `prior` come from
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) r.fail("file", "cannot be opened: '" + file + "'");
    try {
      src = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      throw ConfigError("rate-matrix file '" + file + "': not valid JSON: " + e.what());
    }
    ctx = "rate-matrix file '" + file + "'";
    JsonReader fr(src, ctx);
    fr.raw("rates");
    fr.raw("prior");
    fr.get<std::string>("comment", "");
    fr.finish();
  }
  r.raw("rates");
  r.raw("prior");
  r.finish();
  auto fail = [&](const std::string& what) { throw ConfigError(ctx + ": " + what); };
  if (!src.contains("rates") || !src["rates"].is_array()) fail("field 'rates' is required: a K x K array of numbers");
  const auto& rows = src["rates"];
  const size_t K = rows.size();
  if (K < 2) fail("field 'rates' must have at least 2 rows");
  std::vector<std::vector<double>> R;
  for (size_t i = 0; i < K; ++i) {
    if (!rows[i].is_array() || rows[i].size() != K)
      fail("row " + std::to_string(i) + " of 'rates' must have " + std::to_string(K) + " entries (a square matrix)");
    std::vector<double> row;
    double sum = 0, scale = 1.0;
    for (size_t k = 0; k < K; ++k) {
      if (!rows[i][k].is_number()) fail("row " + std::to_string(i) + ", column " + std::to_string(k) + " is not a number");
      double v = rows[i][k].get<double>();
      if (k != i && v < 0)
        fail("row " + std::to_string(i) + ", column " + std::to_string(k) + ": off-diagonal rates must be >= 0, got " + std::to_string(v));
      row.push_back(v);
      sum += v;
      scale = std::max(scale, std::abs(v));
    }
    if (std::abs(sum) > 1e-9 * scale)
      fail("row " + std::to_string(i) + ": rows of a generator must sum to 0, got " + std::to_string(sum));
    R.push_back(row);
  }
  o.rates(R);
  if (src.contains("prior") && !src["prior"].is_null()) {
    auto p = src["prior"].get<std::vector<double>>();
    double s = 0;
    for (double v : p) {
      if (v < 0) fail("field 'prior' must be non-negative");
      s += v;
    }
    if (p.size() != K || std::abs(s - 1.0) > 1e-9) fail("field 'prior' must be K probabilities summing to 1");
    o.prior(p);
  }
  base.K(int64_t(K));
  if (!(base.schedule().alpha(torch::ones({1}, torch::kFloat64)).item<double>() > 0))
    throw ConfigError("process 'rate-matrix': field 'schedule' must keep alpha(1) > 0 (use log-linear or exponential), "
                      "since Qbar_1 = exp(-log alpha(1) R)");
  o.base(base);
  o.source(file);
  return o;
}

void register_discrete_builtins(ProcessRegistry& reg) {
  using J = nlohmann::json;
  reg.add({"uniform", "uniform kernel to 1/K (D3PM uniform; UDLM), discrete and continuous time",
           UniformProcess(discrete_from_json(J::object(), "uniform", 27, "cosine")).options_json(),
           [](const J& j) -> std::unique_ptr<Process> {
             return std::make_unique<UniformProcess>(discrete_from_json(j, "uniform", 27, "cosine"));
           }});
  reg.add({"absorbing", "absorbing kernel to a mask token K (D3PM absorbing; MDLM; MD4; SEDD)",
           AbsorbingProcess(discrete_from_json(J::object(), "absorbing", 27, "linear")).options_json(),
           [](const J& j) -> std::unique_ptr<Process> {
             return std::make_unique<AbsorbingProcess>(discrete_from_json(j, "absorbing", 27, "linear"));
           }});
  reg.add({"discrete-flow", "discrete flow matching: kappa delta_x0 + (1 - kappa) p_noise, noise mask | uniform, "
           "Campbell et al. 2024's rates with stochasticity eta (Gat et al. 2024); continuous time",
           DiscreteFlowProcess(discrete_flow_options_from_json(J::object())).options_json(),
           [](const J& j) -> std::unique_ptr<Process> {
             return std::make_unique<DiscreteFlowProcess>(discrete_flow_options_from_json(j));
           }});
  reg.add({"absorbing-poly", "absorbing with learned polynomial masking schedules alpha_k = 1 - t^w_k, one per token "
           "(GenMD4) or shared (MD4) (Shi et al. 2024); continuous time",
           PolyMaskProcess(poly_mask_options_from_json(J::object())).options_json(),
           [](const J& j) -> std::unique_ptr<Process> {
             return std::make_unique<PolyMaskProcess>(poly_mask_options_from_json(j));
           }});
  reg.add({"discretized-gaussian", "D3PM's ordinal Gaussian kernel over K = 256 levels, discrete time",
           DiscretizedGaussianProcess(dgauss_from_json(J::object())).options_json(),
           [](const J& j) -> std::unique_ptr<Process> {
             return std::make_unique<DiscretizedGaussianProcess>(dgauss_from_json(j));
           }});
  reg.add({"blackout", "pure-death process on counts, x_t ~ Bin(x0, alpha_t), prior all zeros (Santos et al. 2023)",
           BlackoutProcess(discrete_from_json(J::object(), "blackout", 256, "linear")).options_json(),
           [](const J& j) -> std::unique_ptr<Process> {
             return std::make_unique<BlackoutProcess>(discrete_from_json(j, "blackout", 256, "linear"));
           }});
  J rm_example = {{"rates", {{-1.0, 1.0}, {1.0, -1.0}}}};
  reg.add({"rate-matrix", "a user's K x K generator from JSON ('file' or inline 'rates'); Qbar_t = exp(B(t) R)",
           RateMatrixProcess(rate_matrix_options_from_json(rm_example)).options_json(),
           [](const J& j) -> std::unique_ptr<Process> {
             return std::make_unique<RateMatrixProcess>(rate_matrix_options_from_json(j));
           }});
}

}  // namespace gsdiff
