// The sampler registry, time grids, call counting and the shared ancestral sampler.
#include "sample/sampler.h"

#include <cmath>
#include <map>
#include <stdexcept>

#include "sample/ancestral.h"

namespace gsdiff {

namespace {

struct Entry {
  Space space;
  bool both;  // usable by both families
  torch::Tensor (*fn)(const Process&, const DenoiseFn&, const std::vector<double>&, at::IntArrayRef,
                      torch::Generator&, const Progress&, const SamplerOptions&);
};

const std::map<std::string, Entry>& table() {
  static const std::map<std::string, Entry> t = {
      {"ancestral", {Space::Continuous, true, &sample_ancestral_any}},
      {"ddim", {Space::Continuous, false, &sample_ddim}},
      {"euler-maruyama", {Space::Continuous, false, &sample_euler_maruyama}},
      {"heun", {Space::Continuous, false, &sample_heun}},
      {"dpm-solver++", {Space::Continuous, false, &sample_dpm_solver_pp}},
      {"pc", {Space::Continuous, false, &sample_pc}},
      {"tau-leaping", {Space::Discrete, false, &sample_tau_leaping}},
      {"euler", {Space::Discrete, false, &sample_ctmc_euler}},
      {"tweedie", {Space::Discrete, false, &sample_tweedie}},
      {"mdlm-cached", {Space::Discrete, false, &sample_mdlm_cached}},
  };
  return t;
}

}  // namespace

std::vector<std::string> sampler_names() {
  std::vector<std::string> n;
  for (const auto& [k, v] : table()) n.push_back(k);
  return n;
}

std::vector<std::string> sampler_names(Space space) {
  std::vector<std::string> n;
  for (const auto& [k, v] : table())
    if (v.both || v.space == space) n.push_back(k);
  return n;
}

Sampler make_sampler(const std::string& name, const SamplerOptions& opts) {
  auto it = table().find(name);
  if (it == table().end()) {
    std::string known;
    for (const auto& n : sampler_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown sampler '" + name + "'; known samplers: " + known);
  }
  auto fn = it->second.fn;
  auto entry = it->second;
  return [fn, entry, opts, name](const Process& p, const DenoiseFn& f, const std::vector<double>& grid,
                                 at::IntArrayRef shape, torch::Generator& gen, const Progress& progress) {
    if (!entry.both && entry.space != p.space())
      throw std::invalid_argument("sampler '" + name + "' does not apply to the " + p.name() + " process");
    return p.to_data(fn(p, f, grid, shape, gen, progress, opts));  // e.g. gaussian-embed's codes -> tokens
  };
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
  throw std::invalid_argument("time_grid: unknown kind '" + kind + "' (uniform, quadratic)");
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
                                   const SamplerOptions& o) {
  auto x = sample_ancestral(p, counted(f, o.stats), grid, shape, gen, progress, o.device);
  return x.is_floating_point() ? x.to(o.dtype) : x;  // tokens (discrete, or decoded by to_data) stay int64
}

}  // namespace gsdiff
