// A Process that forwards every call to another and remembers, per example, the first non-finite ELBO term.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "core/process.h"

namespace gsdiff {

// Evaluation scores through TermWatch so that a non-finite bound can name its term (prior, diffusion,
// reconstruction), the time it was scored at and the example. Every method forwards to the watched process;
// prior_kl, reconstruction, step_kl and elbo_integrand also check their per-example sums [B] (one host sync each).
class TermWatch : public Process {
 public:
  struct Hit {
    std::string term;  // prior | diffusion | reconstruction
    double t = 0;      // the time of the term (1 for the prior; t of x_t for step_kl)
    double value = 0;  // the per-example sum: nan, inf or -inf
  };
  explicit TermWatch(const Process& inner) : Process(inner.steps(), inner.t_min()), p_(inner) {}

  void reset(int64_t batch) const { hits_.assign(size_t(batch), std::nullopt); }
  const std::optional<Hit>& hit(int64_t row) const { return hits_.at(size_t(row)); }
  // "process 'blackout': term 'diffusion' is nan at t = 0.371 (step i = 371 of T = 1000)".
  std::string describe(const Hit& h) const;

  std::string name() const override { return p_.name(); }
  Space space() const override { return p_.space(); }
  nlohmann::json options_json() const override { return p_.options_json(); }
  int64_t num_categories() const override { return p_.num_categories(); }
  int64_t num_states() const override { return p_.num_states(); }
  torch::Tensor sample_xt(const torch::Tensor& x0, const torch::Tensor& t, torch::Generator& gen) const override {
    return p_.sample_xt(x0, t, gen);
  }
  torch::Tensor sample_prior(at::IntArrayRef shape, const torch::TensorOptions& opts, torch::Generator& gen) const override {
    return p_.sample_prior(shape, opts, gen);
  }
  torch::Tensor network_input(const torch::Tensor& xt, const torch::Tensor& t) const override { return p_.network_input(xt, t); }
  torch::Tensor state_from_network_input(const torch::Tensor& in, const torch::Tensor& t) const override {
    return p_.state_from_network_input(in, t);
  }
  torch::Tensor read_output(const torch::Tensor& out, const torch::Tensor& xt, const torch::Tensor& t) const override {
    return p_.read_output(out, xt, t);
  }
  torch::Tensor sample_reverse(const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t,
                               const torch::Tensor& pred, torch::Generator& gen) const override {
    return p_.sample_reverse(xt, s, t, pred, gen);
  }
  torch::Tensor to_data(const torch::Tensor& x) const override { return p_.to_data(x); }

  torch::Tensor prior_kl(const torch::Tensor& x0) const override;
  torch::Tensor reconstruction(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& pred) const override;
  torch::Tensor step_kl(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t,
                        const torch::Tensor& pred) const override;
  torch::Tensor elbo_integrand(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& pred) const override;

 private:
  // Records, for each row of the per-dimension term v [B, ...] whose sum is not finite, the first hit.
  torch::Tensor watch(const char* term, const torch::Tensor& v, const torch::Tensor& t) const;
  const Process& p_;
  mutable std::vector<std::optional<Hit>> hits_;
};

}  // namespace gsdiff
