// Gaussian noise schedules: closed forms of alpha, sigma, log-SNR and their time derivatives.
#include "core/schedules.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace gsdiff {

namespace {

using torch::Tensor;

Tensor as_double(const Tensor& t) { return t.to(torch::kFloat64); }

// A VP schedule from lambda(t) and lambda'(t): alpha^2 = sigmoid(lambda), sigma^2 = sigmoid(-lambda).
ScheduleValues vp_from_logsnr(const Tensor& lam, const Tensor& dlam) {
  ScheduleValues v;
  auto a2 = torch::sigmoid(lam), s2 = torch::sigmoid(-lam);
  v.alpha = a2.sqrt();
  v.sigma = s2.sqrt();
  v.logsnr = lam;
  v.dlogsnr = dlam;
  v.dlog_alpha = 0.5 * s2 * dlam;  // d/dt 1/2 log sigmoid(lambda) = 1/2 sigmoid(-lambda) lambda'
  v.dsigma2 = -a2 * s2 * dlam;     // d/dt sigmoid(-lambda)
  return v;
}

// alpha and sigma of vp_from_logsnr alone (the same ops, so the same values).
std::pair<Tensor, Tensor> vp_alpha_sigma(const Tensor& lam) {
  return {torch::sigmoid(lam).sqrt(), torch::sigmoid(-lam).sqrt()};
}

// Integrated linear beta: B(t) = b0 t + (b1 - b0) t^2 / 2, beta(t) = b0 + (b1 - b0) t.
struct LinearBeta {
  double b0, b1;
  Tensor B(const Tensor& t) const { return b0 * t + 0.5 * (b1 - b0) * t * t; }
  Tensor beta(const Tensor& t) const { return b0 + (b1 - b0) * t; }
};

class LinearBetaSchedule : public GaussianSchedule {
 public:
  LinearBetaSchedule(double bmin, double bmax, double tref) : bmin_(bmin), bmax_(bmax), tref_(tref), lb_{bmin * tref, bmax * tref} {}
  std::string name() const override { return "linear-beta"; }
  bool variance_preserving() const override { return true; }
  bool finite_snr_at_zero() const override { return false; }
  ScheduleValues at(const Tensor& t_in) const override {
    auto t = as_double(t_in);
    auto B = lb_.B(t), beta = lb_.beta(t);
    auto s2 = -torch::expm1(-B);                     // 1 - e^{-B}
    auto lam = -B - torch::log(s2);                  // log(e^{-B} / (1 - e^{-B}))
    auto dlam = -beta / s2;
    return vp_from_logsnr(lam, dlam);
  }
  std::pair<Tensor, Tensor> alpha_sigma(const Tensor& t_in) const override {
    auto t = as_double(t_in);
    auto B = lb_.B(t);
    return vp_alpha_sigma(-B - torch::log(-torch::expm1(-B)));  // as at(): lam = -B - log(1 - e^{-B})
  }
  nlohmann::json to_json() const override {
    return {{"type", name()}, {"beta_min", bmin_}, {"beta_max", bmax_}, {"t_ref", tref_}};
  }

 private:
  double bmin_, bmax_, tref_;
  LinearBeta lb_;
};

class CosineSchedule : public GaussianSchedule {
 public:
  CosineSchedule(double s, double logsnr_min) : s_(s), lmin_(logsnr_min) {
    phi0_ = 0.5 * M_PI * s / (1.0 + s);
    phi1_ = std::atan(std::exp(-0.5 * logsnr_min));
  }
  std::string name() const override { return "cosine"; }
  bool variance_preserving() const override { return true; }
  ScheduleValues at(const Tensor& t_in) const override {
    auto t = as_double(t_in);
    auto phi = phi0_ + (phi1_ - phi0_) * t;
    auto lam = -2.0 * torch::log(torch::tan(phi));
    auto dlam = -4.0 * (phi1_ - phi0_) / torch::sin(2.0 * phi);  // d/dt -2 log tan(phi)
    return vp_from_logsnr(lam, dlam);
  }
  std::pair<Tensor, Tensor> alpha_sigma(const Tensor& t_in) const override {
    auto phi = phi0_ + (phi1_ - phi0_) * as_double(t_in);
    return vp_alpha_sigma(-2.0 * torch::log(torch::tan(phi)));
  }
  nlohmann::json to_json() const override { return {{"type", name()}, {"s", s_}, {"logsnr_min", lmin_}}; }

 private:
  double s_, lmin_, phi0_, phi1_;
};

class LinearLogSnrSchedule : public GaussianSchedule {
 public:
  LinearLogSnrSchedule(double lmax, double lmin) : lmax_(lmax), lmin_(lmin) {}
  std::string name() const override { return "linear-logsnr"; }
  bool variance_preserving() const override { return true; }
  ScheduleValues at(const Tensor& t_in) const override {
    auto t = as_double(t_in);
    auto lam = lmax_ - (lmax_ - lmin_) * t;
    return vp_from_logsnr(lam, torch::full_like(t, -(lmax_ - lmin_)));
  }
  std::pair<Tensor, Tensor> alpha_sigma(const Tensor& t_in) const override {
    return vp_alpha_sigma(lmax_ - (lmax_ - lmin_) * as_double(t_in));
  }
  nlohmann::json to_json() const override {
    return {{"type", name()}, {"logsnr_max", lmax_}, {"logsnr_min", lmin_}};
  }

 private:
  double lmax_, lmin_;
};

class VeGeometricSchedule : public GaussianSchedule {
 public:
  VeGeometricSchedule(double smin, double smax) : smin_(smin), smax_(smax), r_(std::log(smax / smin)) {}
  std::string name() const override { return "ve-geometric"; }
  ScheduleValues at(const Tensor& t_in) const override {
    auto t = as_double(t_in);
    ScheduleValues v;
    v.sigma = smin_ * torch::exp(r_ * t);
    v.alpha = torch::ones_like(t);
    v.logsnr = -2.0 * torch::log(v.sigma);
    v.dlogsnr = torch::full_like(t, -2.0 * r_);
    v.dlog_alpha = torch::zeros_like(t);
    v.dsigma2 = 2.0 * r_ * v.sigma * v.sigma;
    return v;
  }
  nlohmann::json to_json() const override { return {{"type", name()}, {"sigma_min", smin_}, {"sigma_max", smax_}}; }

 private:
  double smin_, smax_, r_;
};

class SubVpSchedule : public GaussianSchedule {
 public:
  SubVpSchedule(double bmin, double bmax, double tref) : bmin_(bmin), bmax_(bmax), tref_(tref), lb_{bmin * tref, bmax * tref} {}
  std::string name() const override { return "subvp-linear-beta"; }
  bool finite_snr_at_zero() const override { return false; }
  ScheduleValues at(const Tensor& t_in) const override {
    auto t = as_double(t_in);
    auto B = lb_.B(t), beta = lb_.beta(t);
    auto e = torch::exp(-B);
    auto om = -torch::expm1(-B);  // 1 - e^{-B}
    ScheduleValues v;
    v.alpha = torch::exp(-0.5 * B);
    v.sigma = om;
    v.logsnr = -B - 2.0 * torch::log(om);
    v.dlogsnr = -beta * (1.0 + e) / om;
    v.dlog_alpha = -0.5 * beta;
    v.dsigma2 = 2.0 * om * e * beta;
    return v;
  }
  nlohmann::json to_json() const override {
    return {{"type", name()}, {"beta_min", bmin_}, {"beta_max", bmax_}, {"t_ref", tref_}};
  }

 private:
  double bmin_, bmax_, tref_;
  LinearBeta lb_;
};

// alpha-bar as a product over T steps (the betas are its constants): cum[i] = sum_{j <= i} log(1 - beta_j).
class ProductSchedule : public GaussianSchedule {
 public:
  ProductSchedule(std::string name, nlohmann::json params, const std::vector<double>& betas)
      : name_(std::move(name)), params_(std::move(params)), T_(int64_t(betas.size())) {
    std::vector<double> lg, cum{0.0};
    for (double b : betas) {
      lg.push_back(std::log1p(-b));
      cum.push_back(cum.back() + lg.back());
    }
    log1m_beta_ = torch::tensor(lg, torch::kFloat64);  // [T]
    cum_ = torch::tensor(cum, torch::kFloat64);        // [T + 1]
  }
  std::string name() const override { return name_; }
  bool variance_preserving() const override { return true; }
  bool finite_snr_at_zero() const override { return false; }
  ScheduleValues at(const Tensor& t_in) const override {
    auto [L, dL] = log_alpha_bar(t_in);
    auto s2 = -torch::expm1(L);                    // 1 - alpha-bar
    return vp_from_logsnr(L - torch::log(s2), dL / s2);  // lambda = log(abar / (1 - abar)), lambda' = L' / (1 - abar)
  }
  nlohmann::json to_json() const override {
    auto j = params_;
    j["type"] = name_;
    j["T"] = T_;
    return j;
  }

 private:
  // log alpha-bar(t) and its t-derivative, linear in t within each step (exact on the grid).
  std::pair<Tensor, Tensor> log_alpha_bar(const Tensor& t_in) const {
    auto t = as_double(t_in);
    auto pos = t.cpu() * double(T_);
    auto near = pos.round();
    pos = torch::where((pos - near).abs() < 1e-9, near, pos);  // grid times land on their index exactly
    auto i = pos.floor().clamp(0, double(T_ - 1)).to(torch::kLong);
    auto frac = pos - i.to(torch::kFloat64);
    auto step = log1m_beta_.index({i});
    return {(cum_.index({i}) + frac * step).to(t.device()), (double(T_) * step).to(t.device())};
  }
  std::string name_;
  nlohmann::json params_;
  int64_t T_;
  Tensor log1m_beta_, cum_;
};

}  // namespace

std::shared_ptr<GaussianSchedule> ddpm_linear_beta_schedule(int64_t T, double bmin, double bmax) {
  std::vector<double> betas;
  for (int64_t j = 1; j <= T; ++j) betas.push_back(T == 1 ? bmin : bmin + (bmax - bmin) * double(j - 1) / double(T - 1));
  return std::make_shared<ProductSchedule>("linear-beta-discrete", nlohmann::json{{"beta_min", bmin}, {"beta_max", bmax}}, betas);
}

std::shared_ptr<GaussianSchedule> iddpm_cosine_schedule(int64_t T, double s) {
  auto f = [&](double t) { return std::pow(std::cos((t + s) / (1.0 + s) * M_PI / 2.0), 2); };
  std::vector<double> betas;
  for (int64_t j = 1; j <= T; ++j) betas.push_back(std::min(1.0 - f(double(j) / T) / f(double(j - 1) / T), 0.999));
  return std::make_shared<ProductSchedule>("cosine-discrete", nlohmann::json{{"s", s}}, betas);
}

std::shared_ptr<GaussianSchedule> linear_beta_schedule(double bmin, double bmax, double tref) {
  return std::make_shared<LinearBetaSchedule>(bmin, bmax, tref);
}
std::shared_ptr<GaussianSchedule> cosine_schedule(double s, double logsnr_min) {
  return std::make_shared<CosineSchedule>(s, logsnr_min);
}
std::shared_ptr<GaussianSchedule> linear_logsnr_schedule(double lmax, double lmin) {
  return std::make_shared<LinearLogSnrSchedule>(lmax, lmin);
}
// Flow matching's straight path (Lipman et al. 2023 eq. 20 with time reversed; Liu et al. 2023 at the ends 0):
// alpha = 1 - (1 - alpha_min) t, sigma = sigma_min + (1 - sigma_min) t, so x_t = alpha x0 + sigma eps moves along a
// straight line at the constant velocity u = alpha' x0 + sigma' eps.
class LinearInterpolantSchedule : public GaussianSchedule {
 public:
  LinearInterpolantSchedule(double amin, double smin) : amin_(amin), smin_(smin) {}
  std::string name() const override { return "linear-interpolant"; }
  bool finite_snr_at_zero() const override { return smin_ > 0; }
  ScheduleValues at(const Tensor& t_in) const override {
    auto t = as_double(t_in);
    const double da = -(1.0 - amin_), ds = 1.0 - smin_;  // alpha', sigma'
    ScheduleValues v;
    v.alpha = 1.0 + da * t;
    v.sigma = smin_ + ds * t;
    v.logsnr = 2.0 * (torch::log(v.alpha) - torch::log(v.sigma));
    v.dlog_alpha = da / v.alpha;
    v.dlogsnr = 2.0 * (v.dlog_alpha - ds / v.sigma);
    v.dsigma2 = 2.0 * ds * v.sigma;
    return v;
  }
  nlohmann::json to_json() const override { return {{"type", name()}, {"alpha_min", amin_}, {"sigma_min", smin_}}; }

 private:
  double amin_, smin_;
};

std::shared_ptr<GaussianSchedule> linear_interpolant_schedule(double alpha_min, double sigma_min) {
  return std::make_shared<LinearInterpolantSchedule>(alpha_min, sigma_min);
}

std::shared_ptr<GaussianSchedule> ve_geometric_schedule(double smin, double smax) {
  return std::make_shared<VeGeometricSchedule>(smin, smax);
}
std::shared_ptr<GaussianSchedule> subvp_schedule(double bmin, double bmax, double tref) {
  return std::make_shared<SubVpSchedule>(bmin, bmax, tref);
}

}  // namespace gsdiff
