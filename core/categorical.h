// Categorical forward processes (D3PM kernels, CTMCs) behind the one Process interface (DESIGN.md §1).
#pragma once
#include <torch/torch.h>

#include <mutex>

#include "core/process.h"

namespace gsdiff {

// A process on V states per dimension, data in the first K of them (V = K, or K + 1 with a mask).
// A subclass supplies the kernel as dense matrices (row = from, column = to):
//   Qbar_t = q(x_t | x0)           [N, V, V]   rows sum to 1
//   Q_{t|s} = q(x_t | x_s)          [N, V, V]   Qbar_t = Qbar_s Q_{t|s}   (Chapman–Kolmogorov)
//   R_t                             [N, V, V]   rows sum to 0, d Qbar_t / dt = Qbar_t R_t (master equation)
// and everything else follows generically, per dimension, without a [B, L, V, V] tensor:
//   posterior  q(x_s | x_t, x0)  ∝ Q_{t|s}[x_s, x_t] Qbar_s[x0, x_s]                           (Austin et al. 2021)
//   reverse    p(x_s | x_t)      ∝ Q_{t|s}[x_s, x_t] sum_x0 p(x0 | x_t) Qbar_s[x0, x_s] / Qbar_t[x0, x_t]
//   reverse rates R_hat(x, y) = R_t(y, x) sum_x0 p(x0 | x) Qbar_t[x0, y] / Qbar_t[x0, x]        (Campbell et al. 2022)
//   ELBO integrand  sum_{y != x_t} R_hat_theta - R_hat_q + R_hat_q log(R_hat_q / R_hat_theta)  (Lou et al. 2024)
class CategoricalProcess : public Process {
 public:
  Space space() const override { return Space::Discrete; }
  int64_t num_categories() const override { return K_; }
  int64_t num_states() const override { return V_; }

  // ---- the kernel (float64, times t [N]) ----
  virtual torch::Tensor qbar(const torch::Tensor& t) const = 0;
  virtual torch::Tensor qstep(const torch::Tensor& s, const torch::Tensor& t) const = 0;
  virtual torch::Tensor rate(const torch::Tensor& t) const = 0;
  virtual torch::Tensor prior_probs() const = 0;  // p(x_1) [V]
  // What samplers may assume (sample/sampler.cpp refuses the others by these):
  virtual bool has_generator() const { return true; }    // R_t exists (the CTMC samplers tau-leaping and euler)
  virtual bool ordinal_states() const { return false; }  // states are ordered levels or counts (ordinal tau-leaping)

  // ---- per-dimension gathers; structured kernels override them with O(V) forms ----
  virtual torch::Tensor marginal_probs(const torch::Tensor& x0, const torch::Tensor& t) const;     // q(x_t = . | x0)    [B, ..., V]
  virtual torch::Tensor likelihood_of_xt(const torch::Tensor& xt, const torch::Tensor& t) const;   // q(x_t | x0 = k)    [B, ..., K]
  // log q(x_t | x0 = k), -inf exactly where x0 = k cannot reach x_t [B, ..., K]; the default takes the log of
  // likelihood_of_xt, kernels whose values underflow (blackout's binomials) give it directly.
  virtual torch::Tensor log_likelihood_of_xt(const torch::Tensor& xt, const torch::Tensor& t) const;
  virtual torch::Tensor mul_qbar(const torch::Tensor& w, const torch::Tensor& t) const;            // sum_k w_k Qbar_t[k, .] [B, ..., V]
  virtual torch::Tensor step_probs_into(const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t) const;  // Q_{t|s}[., x_t]
  virtual torch::Tensor rates_into(const torch::Tensor& xt, const torch::Tensor& t) const;         // R_t[., x_t]        [B, ..., V]

  // ---- distributions built from the gathers (probabilities on the last axis) ----
  torch::Tensor posterior_probs(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& s,
                                const torch::Tensor& t) const;  // [B, ..., V]
  torch::Tensor reverse_probs(const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t,
                              const torch::Tensor& logp_x0) const;  // [B, ..., V]
  // Reverse-time rates R_hat_theta(x_t, y) [B, ..., V] (zero at y = x_t), for CTMC samplers.
  virtual torch::Tensor reverse_rates(const torch::Tensor& xt, const torch::Tensor& t, const torch::Tensor& logp_x0) const;

  // ---- Process ----
  torch::Tensor sample_xt(const torch::Tensor& x0, const torch::Tensor& t, torch::Generator& gen) const override;
  torch::Tensor sample_prior(at::IntArrayRef shape, const torch::TensorOptions& opts, torch::Generator& gen) const override;
  torch::Tensor prior_kl(const torch::Tensor& x0) const override;
  // Logits [B, ..., K] -> log p(x0 | x_t) [B, ..., K], zero mass on x0 that cannot reach x_t.
  //   bayes (default):  p(x0 | x_t) ∝ q(x_t | x0) exp(logits)  -- the network gives the x0 factor, the kernel
  //     the likelihood, as D3PM's reverse step does (Austin et al. 2021, eq. 4). It is exact to first order
  //     as t -> 0 (p(x0 != x_t | x_t) shrinks like q(x_t | x0) does), so for any network the continuous-time
  //     integrand grows at most like log(1/t), as the exact denoiser's does, and the bound converges; for
  //     absorbing it equals MDLM's carry-over.
  //   masked: softmax(logits) restricted to reachable x0 (MDLM's carry-over, generalised); in continuous time
  //     a network whose p(x0 != x_t | x_t) does not shrink like t gives an integrand ~ c / t near 0.
  torch::Tensor read_output(const torch::Tensor& out, const torch::Tensor& xt, const torch::Tensor& t) const override;
  torch::Tensor reconstruction(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& logp_x0) const override;
  torch::Tensor step_kl(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t,
                        const torch::Tensor& logp_x0) const override;
  torch::Tensor elbo_integrand(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& logp_x0) const override;
  torch::Tensor sample_reverse(const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t,
                               const torch::Tensor& logp_x0, torch::Generator& gen) const override;

  // The generic integrand through the virtual gathers, and through dense matrices only; closed forms
  // in subclasses are tested against both.
  torch::Tensor elbo_integrand_generic(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                                       const torch::Tensor& logp_x0) const;
  torch::Tensor elbo_integrand_dense(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                                     const torch::Tensor& logp_x0) const;

  // Qbar on the discrete-time grid, [T + 1, V, V], built once (float32 when larger than 64 MB).
  const torch::Tensor& grid_table() const;
  int64_t grid_table_bytes() const { return grid_table().numel() * grid_table().element_size(); }
  // Precision of probabilities computed from integer inputs (float32 default; tests use float64).
  void set_compute_dtype(torch::ScalarType d) { compute_dtype_ = d; }
  torch::ScalarType compute_dtype() const { return compute_dtype_; }

 protected:
  CategoricalProcess(int64_t K, int64_t V, int64_t steps, double t_min) : Process(steps, t_min), K_(K), V_(V) {}
  // Qbar on the grid t_i = i / T; the default evaluates qbar(), product kernels override it.
  virtual torch::Tensor build_grid_table() const {
    return qbar(torch::arange(steps_ + 1, torch::kFloat64) / double(steps_));
  }
  // Qbar_t [N, V, V] from the grid table when every t is on it, else from qbar(); dtype of `like`.
  torch::Tensor qbar_at(const torch::Tensor& t, const torch::Tensor& like) const;

  // Dense gathers (used by the defaults above and by elbo_integrand_dense).
  torch::Tensor dense_marginal(const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& like) const;
  torch::Tensor dense_likelihood(const torch::Tensor& xt, const torch::Tensor& t, const torch::Tensor& like) const;
  torch::Tensor dense_mul_qbar(const torch::Tensor& w, const torch::Tensor& t) const;
  torch::Tensor dense_rates_into(const torch::Tensor& xt, const torch::Tensor& t, const torch::Tensor& like) const;

  int64_t K_, V_;
  bool bayes_ = true;  // read_output's parameterisation (subclasses set it from their options)
  torch::ScalarType compute_dtype_ = torch::kFloat32;  // gathers for int inputs (sampling, prior KL)

 private:
  mutable std::once_flag table_once_;
  mutable torch::Tensor table_;
};

// The integrand's core: sum_{y} rin (r_th - r_q + r_q log(r_q / r_th)), with 0 log 0 = 0 and rin = 0 terms dropped.
torch::Tensor rate_bregman(const torch::Tensor& rin, const torch::Tensor& ratio_q, const torch::Tensor& ratio_th);

// KL(q || p) over the last axis for a posterior given as log q [B, ..., V] (-inf off its support) and a reverse
// step p = sum_x0 p(x0 | x_t) q(. | x_t, x0) given as probabilities: log p is taken as max(log p, log p(x0 | x_t) +
// log q), a bound that holds exactly (the mixture is at least its true-x0 part), so that a p which underflowed to 0
// where q is denormal (K = 256 in float32) gives a finite term, never a smaller one than the exact KL's.
torch::Tensor kl_to_mixture(const torch::Tensor& log_post, const torch::Tensor& rev, const torch::Tensor& logp_x0);

}  // namespace gsdiff
