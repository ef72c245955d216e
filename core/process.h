// The one interface every forward process implements, continuous or discrete (DESIGN.md §1).
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <string>

namespace gsdiff {

enum class Space { Continuous, Discrete };

// A forward process q on a state space, with time t in [0, 1] (0 = data, 1 = prior).
// T = steps() > 0: discrete time on the grid t_i = i / T;  T = 0: continuous time on [t_min, 1].
//
// Conventions for every method (B = batch, "..." = the data dimensions, which are independent):
//   x0    data:   float [B, ...] in [-1, 1] (continuous) or int64 [B, ...] in [0, K) (discrete)
//   xt    state:  float [B, ...] or int64 [B, ...] in [0, V)  (V = num_states() >= K)
//   t, s  times:  float/double [B], s < t
//   pred  the denoiser's prediction in x0-space, made by read_output():
//           continuous: x0_hat [B, ...];  discrete: log p_theta(x0 | x_t) [B, ..., K] (normalised)
//   Terms are per-dimension nats [B, ...]; the caller sums over dimensions.
class Process {
 public:
  virtual ~Process() = default;

  virtual std::string name() const = 0;
  virtual Space space() const = 0;
  virtual nlohmann::json options_json() const = 0;  // resolved options, enough to rebuild the process

  int64_t steps() const { return steps_; }
  bool continuous_time() const { return steps_ == 0; }
  double t_min() const { return t_min_; }  // lower end of the continuous-time integral
  double grid_time(int64_t i) const { return double(i) / double(steps_); }
  virtual int64_t num_categories() const { return 0; }  // K (data alphabet); 0 when continuous
  virtual int64_t num_states() const { return 0; }      // V: values x_t takes (K, or K + 1 with a mask)

  // ---- forward process q ----
  virtual torch::Tensor sample_xt(const torch::Tensor& x0, const torch::Tensor& t, torch::Generator& gen) const = 0;
  virtual torch::Tensor sample_prior(at::IntArrayRef shape, const torch::TensorOptions& opts,
                                     torch::Generator& gen) const = 0;
  virtual torch::Tensor prior_kl(const torch::Tensor& x0) const = 0;  // KL(q(x_1 | x0) || p(x_1))

  // ---- the parameterisation layer: network in and out ----
  // What the network sees for x_t (e.g. variance-normalised for VE); time is passed as t itself.
  virtual torch::Tensor network_input(const torch::Tensor& xt, const torch::Tensor& t) const { return xt; }
  // Its inverse: x_t from what the network saw (self-conditioning reads the estimate of a call, core/self_condition.h).
  virtual torch::Tensor state_from_network_input(const torch::Tensor& in, const torch::Tensor& t) const { return in; }
  // The time the network is given for t (t itself; a learned schedule gives its normalised noise level, as VDM
  // conditions its network on gamma(t)).
  virtual torch::Tensor network_time(const torch::Tensor& t) const { return t; }
  // Parameters of the process itself that training learns beside the network's (a learned noise schedule); empty
  // for a fixed process. Float64 leaves; the trainer moves them to its device and checkpoints them.
  virtual std::vector<torch::Tensor> learnable_parameters() const { return {}; }
  // For learned parameters trained on the variance of the per-example loss (VDM's schedule shape): each example's
  // time t [B] and loss [B] in the batch whose backward comes next (undefined: none); a no-op for other processes.
  virtual void set_variance_target(const torch::Tensor& t, const torch::Tensor& loss) const { (void)t, (void)loss; }
  // For learned parameters that decide which x_t is drawn (GenMD4's masking exponents): log q(x_t | x0) summed over
  // dimensions [B], differentiable in them, for the score-function part of their gradient; undefined otherwise.
  virtual torch::Tensor log_forward_density(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t) const {
    (void)x0, (void)xt, (void)t;
    return {};
  }
  // The network's raw output read as the prediction `pred` (x0_hat, or normalised log p(x0 | x_t)).
  virtual torch::Tensor read_output(const torch::Tensor& out, const torch::Tensor& xt, const torch::Tensor& t) const = 0;

  // ---- ELBO terms (nats per dimension, [B, ...]) ----
  // -log p_theta(x0 | x_t): the reconstruction term at t = t_1 (discrete) or t_min (continuous).
  virtual torch::Tensor reconstruction(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                                       const torch::Tensor& pred) const = 0;
  // KL(q(x_s | x_t, x0) || p_theta(x_s | x_t)), the discrete-time diffusion term.
  virtual torch::Tensor step_kl(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& s,
                                const torch::Tensor& t, const torch::Tensor& pred) const = 0;
  // The continuous-time integrand: L_diffusion = int_{t_min}^1 E_{x_t}[elbo_integrand] dt.
  virtual torch::Tensor elbo_integrand(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                                       const torch::Tensor& pred) const = 0;

  // ---- reverse process ----
  // x_s ~ p_theta(x_s | x_t) = q(x_s | x_t, x0 = pred) (continuous) / sum_x0 q(x_s | x_t, x0) p(x0 | x_t).
  virtual torch::Tensor sample_reverse(const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t,
                                       const torch::Tensor& pred, torch::Generator& gen) const = 0;
  // A reverse chain's final state (or its x0 prediction) as data: the identity, except for a process whose
  // state space differs from the data's (gaussian-embed: codes -> tokens). Data already in data form passes.
  virtual torch::Tensor to_data(const torch::Tensor& x) const { return x; }

 protected:
  Process(int64_t steps, double t_min) : steps_(steps), t_min_(t_min) {}
  int64_t steps_;
  double t_min_;
};

// Reshapes a per-example tensor [B] to broadcast against x [B, ...] (and [B, ..., K] with extra = 1).
inline torch::Tensor per_example(const torch::Tensor& v, const torch::Tensor& like, int64_t extra = 0) {
  std::vector<int64_t> shape(like.dim() + extra, 1);
  shape[0] = v.size(0);
  return v.reshape(shape);
}

// Sums a per-dimension term [B, ...] to per-example [B].
inline torch::Tensor sum_dims(const torch::Tensor& x) { return x.reshape({x.size(0), -1}).sum(1); }

}  // namespace gsdiff
