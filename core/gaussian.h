// Gaussian forward processes (VP, VE, sub-VP) in discrete and continuous time, with their ELBO terms.
#pragma once
#include <torch/torch.h>

#include "core/parameterization.h"
#include "core/process.h"
#include "core/schedules.h"

namespace gsdiff {

struct GaussianOptions {
  TORCH_ARG(std::string, family) = "vp";            // vp | ve | subvp | flow
  // vp: linear-beta | cosine | linear-logsnr | linear-beta-discrete (DDPM's product) | cosine-discrete (iDDPM's);
  // ve: geometric; subvp: linear-beta; flow: linear-interpolant (flow matching's straight path)
  TORCH_ARG(std::string, schedule) = "linear-beta";
  TORCH_ARG(int64_t, steps) = 1000;                  // T; 0 = continuous time
  TORCH_ARG(double, t_min) = -1.0;                   // continuous-time lower end; < 0: 0 if SNR(0) is finite, else 1e-5
  TORCH_ARG(std::string, parameterization) = "eps";  // eps | x0 | v | score | velocity (flow's default) | edm
  TORCH_ARG(std::string, decoder) = "discretized-256";  // discretized-256 (8-bit data) | gaussian (real-valued data)
  TORCH_ARG(double, beta_min) = 1e-4;                // linear-beta (DDPM)
  TORCH_ARG(double, beta_max) = 0.02;
  TORCH_ARG(double, cosine_s) = 0.008;               // cosine (iDDPM)
  TORCH_ARG(double, logsnr_min) = -5.0;              // linear-logsnr (VDM); cosine uses -15 unless set
  TORCH_ARG(double, logsnr_max) = 13.3;
  TORCH_ARG(double, sigma_min) = 0.01;               // ve (Song et al. 2021, CIFAR-10); flow: sigma at t = 0 (1e-4)
  TORCH_ARG(double, alpha_min) = 1e-4;               // flow: alpha at t = 1 (> 0: a finite log-SNR(1))
  TORCH_ARG(double, sigma_data) = 0.5;               // edm parameterisation and weighting (Karras et al. 2022)
  TORCH_ARG(double, sigma_max) = 50.0;
  // learned-logsnr (VDM): hidden sigmoids of the monotone network, whether the endpoints (from logsnr_max and
  // logsnr_min) are trained too, and the trained values (empty: the initial, linear schedule).
  TORCH_ARG(int64_t, schedule_hidden) = 16;
  TORCH_ARG(bool, learn_endpoints) = true;
  TORCH_ARG(std::vector<double>, schedule_values) = {};
};

// Options from JSON: every field above by name; `family` preset by the registry name. Validates ranges.
GaussianOptions gaussian_options_from_json(const nlohmann::json& j, const std::string& family);
nlohmann::json to_json(const GaussianOptions& o);

// q(x_t | x0) = N(alpha_t x0, sigma_t^2 I); prior N(0, I) (VP, sub-VP, flow) or N(0, sigma_max^2 I) (VE).
// gaussian-flow is flow matching / rectified flow inside the lens (Lipman et al. 2023; Liu et al. 2023): the straight
// path alpha = 1 - (1 - alpha_min) t, sigma = sigma_min + (1 - sigma_min) t, a network predicting the velocity
// u = alpha' x0 + sigma' eps, trained by the `weighted` objective with weighting flow-matching (the conditional
// flow-matching loss |u - u_hat|^2) or by the ELBO, and scored by the same bound.
class GaussianProcess : public Process {
 public:
  explicit GaussianProcess(GaussianOptions opts);

  std::string name() const override { return "gaussian-" + opts_.family(); }
  Space space() const override { return Space::Continuous; }
  nlohmann::json options_json() const override;  // a learned schedule's current values included
  const GaussianOptions& options() const { return opts_; }
  const GaussianSchedule& schedule() const { return *schedule_; }
  Param param() const { return param_; }

  // Schedule values at t [B], cast to `like`'s dtype and shaped to broadcast against it.
  ScheduleValues at(const torch::Tensor& t, const torch::Tensor& like) const;
  // Only alpha_t and sigma_t, cast and shaped likewise (the same values as at()'s).
  std::pair<torch::Tensor, torch::Tensor> alpha_sigma(const torch::Tensor& t, const torch::Tensor& like) const;
  // d alpha / dt and d sigma / dt, cast and shaped likewise.
  std::pair<torch::Tensor, torch::Tensor> dalpha_dsigma(const torch::Tensor& t, const torch::Tensor& like) const;
  // The t in [t_min, 1] with log-SNR(t) = lambda (bisection; lambda clamped to the process's range), float64.
  torch::Tensor time_at_logsnr(const torch::Tensor& lambda) const;
  // The network output that predicts x0_hat at (x_t, t) under this process's parameterisation.
  torch::Tensor output_for(const torch::Tensor& x0_hat, const torch::Tensor& xt, const torch::Tensor& t) const;
  double prior_std() const { return prior_std_; }
  // The point of the state space that data x0 stands for (the identity; gaussian-embed: its code e(x0)).
  virtual torch::Tensor embed(const torch::Tensor& x0) const { return x0; }

  // Posterior q(x_s | x_t, x0) = N(mean, var) (Kingma et al. 2021, eq. 8):
  //   mean = alpha_{t|s} sigma_s^2 / sigma_t^2 x_t + alpha_s sigma_{t|s}^2 / sigma_t^2 x0,
  //   var  = sigma_{t|s}^2 sigma_s^2 / sigma_t^2,  with sigma_{t|s}^2 / sigma_t^2 = -expm1(lambda_t - lambda_s).
  std::pair<torch::Tensor, torch::Tensor> posterior(const torch::Tensor& x0, const torch::Tensor& xt,
                                                    const torch::Tensor& s, const torch::Tensor& t) const;

  torch::Tensor sample_xt(const torch::Tensor& x0, const torch::Tensor& t, torch::Generator& gen) const override;
  torch::Tensor sample_prior(at::IntArrayRef shape, const torch::TensorOptions& opts, torch::Generator& gen) const override;
  torch::Tensor prior_kl(const torch::Tensor& x0) const override;

  // The network sees x_t / sqrt(alpha_t^2 + sigma_t^2) (unit variance for VE as well; x_t itself for VP).
  torch::Tensor network_input(const torch::Tensor& xt, const torch::Tensor& t) const override;
  // learned-logsnr: the network sees g(t), the schedule's normalised noise level; the schedule's leaves train.
  torch::Tensor network_time(const torch::Tensor& t) const override;
  std::vector<torch::Tensor> learnable_parameters() const override;
  void set_variance_target(const torch::Tensor& t, const torch::Tensor& loss) const override;
  torch::Tensor state_from_network_input(const torch::Tensor& in, const torch::Tensor& t) const override;
  torch::Tensor read_output(const torch::Tensor& out, const torch::Tensor& xt, const torch::Tensor& t) const override;

  // Decoder p(x0 | x_t) around x0_hat with std sigma_t / alpha_t: discretized over 256 bins or a density.
  torch::Tensor reconstruction(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& x0_hat) const override;
  // KL of two Gaussians with equal variance: 1/2 (SNR(s) - SNR(t)) (x0 - x0_hat)^2 (VDM eq. 13).
  torch::Tensor step_kl(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& s,
                        const torch::Tensor& t, const torch::Tensor& x0_hat) const override;
  // -1/2 dSNR/dt (x0 - x0_hat)^2 (VDM eq. 17).
  torch::Tensor elbo_integrand(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& x0_hat) const override;
  torch::Tensor sample_reverse(const torch::Tensor& xt, const torch::Tensor& s, const torch::Tensor& t,
                               const torch::Tensor& x0_hat, torch::Generator& gen) const override;

  // SDE coefficients dx = f(t) x dt + g(t) dW (for samplers), shaped like t.
  torch::Tensor drift_coef(const torch::Tensor& t) const { return schedule_->at(t).f(); }
  torch::Tensor diffusion_sq(const torch::Tensor& t) const { return schedule_->at(t).g2(); }

 private:
  GaussianOptions opts_;
  std::shared_ptr<GaussianSchedule> schedule_;
  Param param_;
  EdmPrecond edm_;  // parameterization edm
  double prior_std_;
};

}  // namespace gsdiff
