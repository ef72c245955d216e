// A user's kernel: the lazy random walk on a ring of K states, in closed form through its circulant spectrum.
#pragma once
#include <cmath>

#include "core/categorical.h"
#include "core/registry.h"

// Generator R (rows sum to 0): jump to each neighbour (i +- 1 mod K) at rate 1/2, scaled by `rate`.
// R is circulant with eigenvalues lambda_k = cos(2 pi k / K) - 1, so with B(t) = rate * t
//   Qbar_t[i, j] = 1/K sum_k exp(B(t) lambda_k) cos(2 pi k (j - i) / K),   Q_{t|s} = the same with B(t) - B(s).
// The stationary (and prior) law is uniform.
class RingWalkProcess : public gsdiff::CategoricalProcess {
 public:
  RingWalkProcess(int64_t K, int64_t steps, double rate) : CategoricalProcess(K, K, steps, 0.0), rate_(rate) {
    set_compute_dtype(torch::kFloat64);
  }
  std::string name() const override { return "ring-walk"; }
  nlohmann::json options_json() const override {
    return {{"name", name()}, {"K", K_}, {"steps", steps_}, {"rate", rate_}};
  }
  torch::Tensor qbar(const torch::Tensor& t) const override { return heat_kernel(rate_ * t.to(torch::kFloat64)); }
  torch::Tensor qstep(const torch::Tensor& s, const torch::Tensor& t) const override {
    return heat_kernel(rate_ * (t - s).to(torch::kFloat64));
  }
  torch::Tensor rate(const torch::Tensor& t) const override {
    auto i = torch::arange(K_);
    auto R = torch::zeros({K_, K_}, torch::kFloat64);
    R.index_put_({i, (i + 1) % K_}, 0.5);
    R.index_put_({i, (i + K_ - 1) % K_}, 0.5);
    R -= torch::diag(R.sum(1));
    return rate_ * R.unsqueeze(0).expand({t.numel(), K_, K_}).clone();
  }
  torch::Tensor prior_probs() const override { return torch::full({K_}, 1.0 / double(K_), torch::kFloat64); }

 private:
  torch::Tensor heat_kernel(const torch::Tensor& B) const {  // B [N] -> [N, K, K]
    auto k = torch::arange(K_, torch::kFloat64);
    auto lam = torch::cos(2 * M_PI * k / double(K_)) - 1.0;                       // [K]
    auto d = k.unsqueeze(0) - k.unsqueeze(1);                                     // [K, K] j - i
    auto c = torch::cos(2 * M_PI * k.view({K_, 1, 1}) * d.unsqueeze(0) / K_);     // [K(k), K, K]
    auto e = torch::exp(B.reshape({-1, 1}) * lam.unsqueeze(0));                   // [N, K(k)]
    return torch::einsum("nk,kij->nij", {e, c}) / double(K_);
  }
  double rate_;
};

// Registers "ring-walk" with options {"K", "steps", "rate"}.
inline void register_ring_walk() {
  gsdiff::register_builtins();
  auto& reg = gsdiff::ProcessRegistry::global();
  if (reg.contains("ring-walk")) return;
  reg.add({"ring-walk", "lazy random walk on a ring (example user kernel)", RingWalkProcess(8, 0, 1.0).options_json(),
           [](const nlohmann::json& j) -> std::unique_ptr<gsdiff::Process> {
             return std::make_unique<RingWalkProcess>(j.value("K", int64_t(8)), j.value("steps", int64_t(0)), j.value("rate", 1.0));
           }});
}
