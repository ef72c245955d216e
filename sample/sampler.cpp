// The sampler registry, time grids, call counting and the shared ancestral sampler.
#include "sample/sampler.h"

#include <cmath>
#include <map>
#include <stdexcept>

#include "core/categorical.h"
#include "core/gaussian.h"
#include "core/mixture_kernels.h"
#include "sample/ancestral.h"
#include "sample/masked_step.h"

namespace gsdiff {

namespace {

using SamplerFn = torch::Tensor (*)(const Process&, const DenoiseFn&, const std::vector<double>&, at::IntArrayRef,
                                    torch::Generator&, const Progress&, const SamplerOptions&, const StepHook&);
// Why a sampler cannot run on a process with these options ("" when it can).
using Refusal = std::string (*)(const Process&, const SamplerOptions&);

const CategoricalProcess* cat(const Process& p) { return dynamic_cast<const CategoricalProcess*>(&p); }

std::string any_process(const Process&, const SamplerOptions&) { return ""; }
std::string gaussian_only(const Process& p, const SamplerOptions&) {
  return dynamic_cast<const GaussianProcess*>(&p) ? "" : "it needs a Gaussian process";
}
std::string categorical_only(const Process& p, const SamplerOptions&) {
  return cat(p) ? "" : "it needs a categorical process";
}
std::string with_generator(const Process& p, const SamplerOptions& o) {
  if (!cat(p)) return "it needs a categorical process";
  if (!cat(p)->has_generator()) return "it steps the reverse CTMC, and this discrete-time kernel has no generator R_t";
  return "";
}
// Whether o asks tau-leaping for ordinal steps (read leniently: the options may be another sampler's, when the
// compatible samplers are listed for an error; make_sampler checks them for the sampler named).
bool ordinal_steps(const SamplerOptions& o) {
  const auto& j = o.method;
  return j.is_object() && j.contains("ordinal") && j.at("ordinal").is_boolean() && j.at("ordinal").get<bool>();
}
std::string tau_leaping(const Process& p, const SamplerOptions& o) {
  auto why = with_generator(p, o);
  if (why.empty() && ordinal_steps(o) && !cat(p)->ordinal_states())
    return "ordinal steps add jump displacements, and its states are not ordered (ordinal: blackout, discretized-gaussian)";
  return why;
}
std::string absorbing_only(const Process& p, const SamplerOptions&) {
  return dynamic_cast<const AbsorbingProcess*>(&p) ? "" : "its cache is exact only for the absorbing process";
}

struct Entry {
  SamplerFn fn;
  Refusal refuses;
};

const std::map<std::string, Entry>& table() {
  static const std::map<std::string, Entry> t = {
      {"ancestral", {&sample_ancestral_any, &any_process}},
      {"ddim", {&sample_ddim, &gaussian_only}},
      {"euler-maruyama", {&sample_euler_maruyama, &gaussian_only}},
      {"heun", {&sample_heun, &gaussian_only}},
      {"dpm-solver++", {&sample_dpm_solver_pp, &gaussian_only}},
      {"pc", {&sample_pc, &gaussian_only}},
      {"tau-leaping", {&sample_tau_leaping, &tau_leaping}},
      {"euler", {&sample_ctmc_euler, &with_generator}},
      {"tweedie", {&sample_tweedie, &categorical_only}},
      {"mdlm-cached", {&sample_mdlm_cached, &absorbing_only}},
  };
  return t;
}

// The sampler's own refusal, then step guidance's: every discrete sampler applies it, on a categorical process.
std::string refusal(const std::string& /*name*/, const Entry& e, const Process& p, const SamplerOptions& o) {
  auto why = e.refuses(p, o);
  if (why.empty() && o.guidance && !cat(p))
    why = "guidance of the reverse step (" + o.guidance->name() + ") runs on a categorical process";
  return why;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& n : v) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

std::vector<std::string> sampler_names() {
  std::vector<std::string> n;
  for (const auto& [k, v] : table()) n.push_back(k);
  return n;
}

std::vector<std::string> sampler_names(Space space) {
  std::vector<std::string> n;
  for (const auto& [k, v] : table()) {
    const bool gauss = v.refuses == &gaussian_only;
    if (v.refuses == &any_process || gauss == (space == Space::Continuous)) n.push_back(k);
  }
  return n;
}

std::vector<std::string> compatible_samplers(const Process& p, const SamplerOptions& opts) {
  std::vector<std::string> n;
  for (const auto& [k, v] : table())
    if (refusal(k, v, p, opts).empty()) n.push_back(k);
  return n;
}

void check_sampler(const std::string& name, const Process& p, const SamplerOptions& opts) {
  auto it = table().find(name);
  if (it == table().end())
    throw std::invalid_argument("unknown sampler '" + name + "'; known samplers: " + joined(sampler_names()));
  auto why = refusal(it->first, it->second, p, opts);
  if (!why.empty())
    throw std::invalid_argument("sampler '" + name + "' does not apply to the " + p.name() + " process: " + why +
                                "; samplers for it: " + joined(compatible_samplers(p, opts)));
}

Sampler make_sampler(const std::string& name, const SamplerOptions& opts) {
  auto it = table().find(name);
  if (it == table().end())
    throw std::invalid_argument("unknown sampler '" + name + "'; known samplers: " + joined(sampler_names()));
  validate_method_options(name, opts.method);  // its own options, parsed once here (errors list them)
  auto fn = it->second.fn;
  return Sampler([fn, opts, name](const Process& p, const DenoiseFn& f, const std::vector<double>& grid,
                                   at::IntArrayRef shape, torch::Generator& gen, const Progress& progress,
                                   const StepHook& hook) {
    check_sampler(name, p, opts);
    return p.to_data(fn(p, f, grid, shape, gen, progress, opts, hook));  // e.g. gaussian-embed's codes -> tokens
  });
}

std::vector<double> time_grid(const Process& p, int64_t steps, const std::string& kind) {
  if (kind == "uniform") return default_grid(p, steps);
  if (kind == "quadratic") {
    if (!p.continuous_time()) throw std::invalid_argument("time_grid: 'quadratic' needs a continuous-time process");
    const int64_t n = steps > 0 ? steps : 100;
    std::vector<double> g;
    for (int64_t k = n; k >= 0; --k) g.push_back(std::pow(double(k) / double(n), 2.0));
    return g;
  }
  if (kind == "karras") return karras_grid(p, steps);
  throw std::invalid_argument("time_grid: unknown kind '" + kind + "' (uniform, quadratic, karras)");
}

// EDM's noise levels (Karras et al. 2022, eq. 5): s~_i = (s~max^(1/rho) + i / (n - 1) (s~min^(1/rho) - s~max^(1/rho)))^rho
// for the VE-equivalent level s~ = sigma / alpha over the process's own range [s~(t_min), s~(1)], each mapped to the
// t with that log-SNR, then t = 0 (when t_min > 0; at t_min = 0 the last level already is t = 0).
std::vector<double> karras_grid(const Process& p, int64_t steps, double rho) {
  auto* g = dynamic_cast<const GaussianProcess*>(&p);
  if (!g || !p.continuous_time())
    throw std::invalid_argument("time_grid: 'karras' needs a continuous-time Gaussian process, got '" + p.name() + "'");
  const int64_t n = steps > 0 ? steps : 18;
  auto level = [&](double t) { return std::exp(-0.5 * g->schedule().at(torch::full({1}, t, torch::kFloat64)).logsnr.item<double>()); };
  const double hi = std::pow(level(1.0), 1.0 / rho), lo = std::pow(level(p.t_min()), 1.0 / rho);
  auto i = torch::arange(n, torch::kFloat64) / double(std::max<int64_t>(n - 1, 1));
  auto sig = torch::pow(hi + i * (lo - hi), rho);                 // [n] descending
  auto t = g->time_at_logsnr(-2.0 * torch::log(sig)).contiguous();  // [n] descending in t
  std::vector<double> grid(t.data_ptr<double>(), t.data_ptr<double>() + n);
  grid.front() = 1.0, grid.back() = p.t_min();
  if (p.t_min() > 0) grid.push_back(0.0);
  return grid;
}

DenoiseFn counted(DenoiseFn f, SamplerStats* stats) {
  if (!stats) return f;
  return [f = std::move(f), stats](const torch::Tensor& x, const torch::Tensor& t) {
    stats->network_calls += 1;
    stats->network_rows += x.size(0);
    return f(x, t);
  };
}

torch::Tensor sample_ancestral_any(const Process& p, const DenoiseFn& f, const std::vector<double>& grid,
                                   at::IntArrayRef shape, torch::Generator& gen, const Progress& progress,
                                   const SamplerOptions& o, const StepHook& hook) {
  const auto mo = masked_options("ancestral", o.method);
  if (o.guidance) {
    if (!mo.plain()) throw std::invalid_argument("sampler 'ancestral': discrete guidance does not combine with remask / unmask");
    return sample_guided_ancestral(p, counted(f, o.stats), *o.guidance, grid, shape, gen, progress, o.device, hook);
  }
  if (!mo.plain()) {  // remasking / confidence order: the absorbing chain of sample/masked_step.h
    auto* a = dynamic_cast<const AbsorbingProcess*>(&p);
    if (!a)
      throw std::invalid_argument("sampler 'ancestral': options remask / unmask need the absorbing (mask) process, got " + p.name());
    return sample_absorbing(*a, counted(f, o.stats), grid, shape, gen, progress, o.device, hook, mo, false);
  }
  auto x = sample_ancestral(p, counted(f, o.stats), grid, shape, gen, progress, o.device, hook);
  return x.is_floating_point() ? x.to(o.dtype) : x;  // tokens (discrete, or decoded by to_data) stay int64
}

}  // namespace gsdiff
