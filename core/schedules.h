// Noise schedules as pure functions of t in [0, 1]: alpha_t, sigma_t, log-SNR and derivatives.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <utility>

namespace gsdiff {

// Values of a Gaussian schedule at times t (all tensors shaped like t, float64).
// x_t = alpha_t x0 + sigma_t eps;  logsnr = log(alpha^2 / sigma^2)  (Kingma et al. 2021, VDM).
struct ScheduleValues {
  torch::Tensor alpha, sigma;       // alpha_t, sigma_t
  torch::Tensor logsnr, dlogsnr;    // lambda_t and d lambda / dt
  torch::Tensor dlog_alpha;         // f(t) = d log alpha_t / dt  (drift coefficient of the SDE)
  torch::Tensor dsigma2;            // d sigma_t^2 / dt

  torch::Tensor snr() const { return torch::exp(logsnr); }
  torch::Tensor dsnr() const { return torch::exp(logsnr) * dlogsnr; }  // d SNR / dt
  // SDE dx = f x dt + g dW with f = d log alpha/dt, g^2 = d sigma^2/dt - 2 f sigma^2 (VDM App. A).
  torch::Tensor f() const { return dlog_alpha; }
  torch::Tensor g2() const { return dsigma2 - 2.0 * dlog_alpha * sigma * sigma; }
};

// A Gaussian noise schedule. Implementations are stateless apart from their constants.
class GaussianSchedule {
 public:
  virtual ~GaussianSchedule() = default;
  virtual std::string name() const = 0;
  virtual ScheduleValues at(const torch::Tensor& t) const = 0;  // t: any shape, any float dtype
  // alpha_t and sigma_t alone (x_t, the network input and the output reading need no more): the same
  // values, bit for bit, as at(t).alpha / at(t).sigma, without computing the log-SNR derivatives.
  virtual std::pair<torch::Tensor, torch::Tensor> alpha_sigma(const torch::Tensor& t) const {
    auto v = at(t);
    return {v.alpha, v.sigma};
  }
  virtual nlohmann::json to_json() const = 0;
  // Whether SNR(0) is finite (needed for a continuous-time bound starting at t_min = 0).
  virtual bool finite_snr_at_zero() const { return true; }
  // Whether alpha_t^2 + sigma_t^2 = 1 for every t (exactly, not only up to rounding).
  virtual bool variance_preserving() const { return false; }
};

// --- variance-preserving schedules (alpha^2 + sigma^2 = 1) ---

// DDPM's linear beta in its continuous-time form (Song et al. 2021, eq. 33):
// beta(t) = b0 + t (b1 - b0) with b = T_ref * beta_DDPM; alpha^2 = exp(-int_0^t beta).
// Defaults beta 1e-4 .. 0.02 at T_ref = 1000 (Ho et al. 2020).
std::shared_ptr<GaussianSchedule> linear_beta_schedule(double beta_min = 1e-4, double beta_max = 0.02,
                                                       double t_ref = 1000.0);
// Cosine (Nichol & Dhariwal 2021): alpha = cos(phi), sigma = sin(phi), phi linear in t from
// phi_0 = (pi/2) s/(1+s) (offset s = 0.008) to phi_1 = atan(exp(-logsnr_min/2)).
std::shared_ptr<GaussianSchedule> cosine_schedule(double s = 0.008, double logsnr_min = -15.0);
// Linear log-SNR (VDM): lambda(t) = logsnr_max - (logsnr_max - logsnr_min) t; defaults 13.3 .. -5.
std::shared_ptr<GaussianSchedule> linear_logsnr_schedule(double logsnr_max = 13.3, double logsnr_min = -5.0);

// --- discrete-time product schedules: alpha-bar_i = prod_{j <= i} (1 - beta_j) on the grid t_i = i / T ---
// Between grid points log alpha-bar is linear in t (beta_j spread evenly over its step), so the schedule is
// a pure function of t that equals the paper's table exactly at t = i / T.
// DDPM (Ho et al. 2020, sec. 4): beta_j linear from beta_min to beta_max over j = 1..T.
std::shared_ptr<GaussianSchedule> ddpm_linear_beta_schedule(int64_t T = 1000, double beta_min = 1e-4, double beta_max = 0.02);
// iDDPM (Nichol & Dhariwal 2021, eq. 17): alpha-bar(t) = f(t) / f(0), f(t) = cos^2((t + s)/(1 + s) pi/2),
// beta_j = min(1 - alpha-bar(j/T) / alpha-bar((j-1)/T), 0.999), and alpha-bar_i the product of (1 - beta_j).
std::shared_ptr<GaussianSchedule> iddpm_cosine_schedule(int64_t T = 1000, double s = 0.008);

// --- variance-exploding (Song et al. 2021): alpha = 1, sigma = sigma_min (sigma_max / sigma_min)^t ---
std::shared_ptr<GaussianSchedule> ve_geometric_schedule(double sigma_min = 0.01, double sigma_max = 50.0);

// --- flow matching's straight path (Lipman et al. 2023; rectified flow, Liu et al. 2023, as alpha_min, sigma_min -> 0):
// alpha = 1 - (1 - alpha_min) t, sigma = sigma_min + (1 - sigma_min) t; alpha_min > 0 keeps log-SNR(1) finite ---
std::shared_ptr<GaussianSchedule> linear_interpolant_schedule(double alpha_min = 1e-4, double sigma_min = 1e-4);

// --- sub-VP (Song et al. 2021): alpha = exp(-B/2), sigma = 1 - exp(-B), B = int_0^t beta (linear beta) ---
std::shared_ptr<GaussianSchedule> subvp_schedule(double beta_min = 1e-4, double beta_max = 0.02,
                                                 double t_ref = 1000.0);

}  // namespace gsdiff
