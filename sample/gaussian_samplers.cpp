// Samplers for Gaussian processes: DDIM, Euler–Maruyama, Heun (PF-ODE or EDM churn), DPM-Solver++(2M/3M, ODE or SDE), PC.
#include <array>
#include <cmath>
#include <stdexcept>

#include "core/distributions.h"
#include "core/gaussian.h"
#include "sample/sampler.h"

namespace gsdiff {

using torch::Tensor;

namespace {

// Schedule values at one time t, as doubles.
struct At {
  double alpha, sigma, logsnr, f, g2;
};

At at_time(const GaussianProcess& g, double t) {
  auto v = g.schedule().at(torch::full({1}, t, torch::kFloat64));
  return {v.alpha.item<double>(), v.sigma.item<double>(), v.logsnr.item<double>(), v.f().item<double>(),
          v.g2().item<double>()};
}

// Shared loop state: the process, the counted network, a validated grid and the prior draw.
struct Run {
  const GaussianProcess& g;
  DenoiseFn f;
  const std::vector<double>& grid;
  torch::TensorOptions tdev;
  int64_t B;

  Run(const Process& p, const DenoiseFn& fn, const std::vector<double>& gr, at::IntArrayRef shape,
      const SamplerOptions& o, const char* who)
      : g(cast(p, who)), f(counted(fn, o.stats)), grid(gr),
        tdev(torch::TensorOptions().dtype(torch::kFloat64).device(o.device)), B(shape[0]) {
    if (grid.size() < 2) throw std::invalid_argument(std::string(who) + ": the grid needs at least two times");
    for (size_t i = 1; i < grid.size(); ++i)
      if (!(grid[i] < grid[i - 1])) throw std::invalid_argument(std::string(who) + ": the grid must be strictly descending");
  }
  static const GaussianProcess& cast(const Process& p, const char* who) {
    auto* g = dynamic_cast<const GaussianProcess*>(&p);
    if (!g) throw std::invalid_argument(std::string(who) + ": needs a Gaussian process, got " + p.name());
    return *g;
  }
  Tensor prior(at::IntArrayRef shape, const SamplerOptions& o, torch::Generator& gen) const {
    return g.sample_prior(shape, torch::TensorOptions().dtype(o.dtype).device(o.device), gen);
  }
  Tensor x0_hat(const Tensor& x, double t) const { return predict(g, f, x, torch::full({B}, t, tdev)).to(x.dtype()); }
  // grad log p_t(x) = -(x - alpha x0_hat) / sigma^2 (Tweedie), and x0_hat.
  Tensor score(const Tensor& x, double t, const At& a, Tensor* x0 = nullptr) const {
    auto xh = x0_hat(x, t);
    if (x0) *x0 = xh;
    return -(x - a.alpha * xh) / (a.sigma * a.sigma);
  }
  int64_t steps() const { return int64_t(grid.size()) - 1; }
};

// One Euler–Maruyama step of the reverse SDE dx = [f x - g^2 score] dt + g dW (time running backwards).
Tensor em_step(const Run& r, const Tensor& x, double t, double s, torch::Generator& gen) {
  auto a = at_time(r.g, t);
  Tensor x0;
  auto sc = r.score(x, t, a, &x0);
  if (s <= 0.0) return x0;
  const double h = t - s;
  return x - h * (a.f * x - a.g2 * sc) + std::sqrt(a.g2 * h) * randn_like_gen(x, gen);
}

}  // namespace

Tensor sample_ddim(const Process& p, const DenoiseFn& f, const std::vector<double>& grid, at::IntArrayRef shape,
                   torch::Generator& gen, const Progress& progress, const SamplerOptions& o, const StepHook& hook) {
  torch::NoGradGuard ng;
  Run r(p, f, grid, shape, o, "ddim");
  const double eta = ddim_options(o.method).eta();
  auto step = [&](const Tensor& x, int64_t k) {
    const double t = grid[k], s = grid[k + 1];
    auto at = at_time(r.g, t), as = at_time(r.g, s);
    auto x0 = r.x0_hat(x, t);
    if (s <= 0.0) return x0;
    auto eps = (x - at.alpha * x0) / at.sigma;
    // c^2 = eta^2 Var q(x_s | x_t, x0) = eta^2 sigma_s^2 (1 - e^{lambda_t - lambda_s}).
    const double c2 = eta * eta * as.sigma * as.sigma * -std::expm1(at.logsnr - as.logsnr);
    auto xs = as.alpha * x0 + std::sqrt(std::max(0.0, as.sigma * as.sigma - c2)) * eps;
    return c2 > 0 ? xs + std::sqrt(c2) * randn_like_gen(xs, gen) : xs;
  };
  return run_reverse_steps(r.prior(shape, o, gen), grid, step, hook, gen, progress);  // [B, ...]
}

Tensor sample_euler_maruyama(const Process& p, const DenoiseFn& f, const std::vector<double>& grid,
                             at::IntArrayRef shape, torch::Generator& gen, const Progress& progress,
                             const SamplerOptions& o, const StepHook& hook) {
  torch::NoGradGuard ng;
  Run r(p, f, grid, shape, o, "euler-maruyama");
  auto step = [&](const Tensor& x, int64_t k) { return em_step(r, x, grid[k], grid[k + 1], gen); };
  return run_reverse_steps(r.prior(shape, o, gen), grid, step, hook, gen, progress);
}

namespace {

// EDM's churn (Karras et al. 2022, Alg. 2, lines 4-6): the time t^ > t whose level s~^ = sigma / alpha is
// (1 + gamma) s~_t (capped at the grid's top level: the network is defined on t <= grid.front()), and x lifted
// there, x~^ = x / alpha_t + sqrt(s~^2 - s~_t^2) s_noise z; returns t itself and x unchanged where gamma = 0 or
// s~_t is outside [s_tmin, s_tmax].
std::pair<double, Tensor> churn(const Run& r, const HeunOptions& ho, const Tensor& x, double t, torch::Generator& gen) {
  const double gamma = std::min(ho.s_churn() / double(r.steps()), std::sqrt(2.0) - 1.0);
  auto at = at_time(r.g, t);
  const double lev = at.sigma / at.alpha;
  if (!(gamma > 0) || lev < ho.s_tmin() || lev > ho.s_tmax()) return {t, x};
  auto top = at_time(r.g, r.grid.front());
  const double want = std::min(lev * (1.0 + gamma), top.sigma / top.alpha);
  const double th = std::min(r.grid.front(), r.g.time_at_logsnr(torch::full({1}, -2.0 * std::log(want), torch::kFloat64))
                                                  .item<double>());
  auto ah = at_time(r.g, th);
  const double lev_hat = ah.sigma / ah.alpha;  // the level t^ has (the bisection's, not `want`)
  if (!(th > t) || !(lev_hat > lev)) return {t, x};
  const double sd = std::sqrt(lev_hat * lev_hat - lev * lev) * ho.s_noise();
  return {th, ah.alpha * (x / at.alpha + sd * randn_like_gen(x, gen))};
}

}  // namespace

Tensor sample_heun(const Process& p, const DenoiseFn& f, const std::vector<double>& grid, at::IntArrayRef shape,
                   torch::Generator& gen, const Progress& progress, const SamplerOptions& o, const StepHook& hook) {
  torch::NoGradGuard ng;
  Run r(p, f, grid, shape, o, "heun");
  const auto ho = heun_options(o.method);
  // Heun's method on the probability-flow ODE, in the time variable where its paths are nearly straight:
  //  - flow matching's straight path (gaussian-flow): t itself, dx/dt = f x - 1/2 g^2 score (Liu et al. 2023);
  //  - every other Gaussian path: EDM's variables (Karras et al. 2022, Alg. 1 and sec. 4), the VE state
  //    x~ = x / alpha at noise level s~ = sigma / alpha, dx~/ds~ = (x~ - x0_hat) / s~ (x~ - m grows like s~ once
  //    s~ exceeds the data's spread; in t it grows exponentially on VE and VP schedules).
  // Measured on Gaussian data, VE 0.002..80, 18 / 36 / 72 Karras levels: variance +14% / +3.2% / +0.9% in s~, against
  // +44..+98% at 18 levels in t. With s_churn > 0 each step first lifts x to a higher level (churn above), Alg. 2.
  const bool in_t = r.g.schedule().name() == "linear-interpolant";
  auto slope = [&](const Tensor& xv, double t, const At& a, Tensor* x0) {  // d(state) / d(time variable)
    if (in_t) return a.f * xv - 0.5 * a.g2 * r.score(xv, t, a, x0);
    auto xh = r.x0_hat(a.alpha * xv, t);
    if (x0) *x0 = xh;
    return (xv - xh) / (a.sigma / a.alpha);
  };
  auto state = [&](const Tensor& x, const At& a) { return in_t ? x : x / a.alpha; };
  auto back = [&](const Tensor& xv, const At& a) { return in_t ? xv : a.alpha * xv; };
  auto clock = [&](double t, const At& a) { return in_t ? t : a.sigma / a.alpha; };
  auto step = [&](const Tensor& x_in, int64_t k) {
    const double s = grid[k + 1];
    auto [t, x] = churn(r, ho, x_in, grid[k], gen);  // t = grid[k] and x = x_in without churn
    auto at = at_time(r.g, t);
    Tensor x0;
    auto xv = state(x, at);
    auto d1 = slope(xv, t, at, &x0);
    if (s <= 0.0) return x0;  // final step: the denoised prediction
    auto as = at_time(r.g, s);
    const double h = clock(s, as) - clock(t, at);  // < 0
    auto xe = xv + h * d1;                          // Euler predictor
    auto d2 = slope(xe, s, as, nullptr);
    return back(xv + h * 0.5 * (d1 + d2), as);     // trapezoidal corrector
  };
  return run_reverse_steps(r.prior(shape, o, gen), grid, step, hook, gen, progress);
}

namespace {

// J_k = int_0^h c e^{-c v} (h - v)^k / k! dv, the exact weights of the powers (lambda - lambda_t)^k / k! of x0_hat's
// expansion in DPM-Solver++'s integral: J_0 = 1 - e^{-c h}, J_k = h^k / k! - J_{k-1} / c (integration by parts).
std::array<double, 3> dpm_weights(double h, double c) {
  const double j0 = -std::expm1(-c * h), j1 = h - j0 / c, j2 = 0.5 * h * h - j1 / c;
  return {j0, j1, j2};
}

}  // namespace

Tensor sample_dpm_solver_pp(const Process& p, const DenoiseFn& f, const std::vector<double>& grid,
                            at::IntArrayRef shape, torch::Generator& gen, const Progress& progress,
                            const SamplerOptions& o, const StepHook& hook) {
  torch::NoGradGuard ng;
  Run r(p, f, grid, shape, o, "dpm-solver++");
  const auto dopt = dpm_solver_options(o.method);
  const double eta = dopt.eta(), c = 1.0 + eta;
  // The data-prediction solution from lambda_t to lambda_s = lambda_t + h (Lu et al. 2022, eq. 9; its SDE form for
  // eta = 1, and the eta-family between):
  //   x_s = (sigma_s / sigma_t) e^{-eta h} x_t + alpha_s int_{lambda_t}^{lambda_s} c e^{-c (lambda_s - l)} x0(l) dl
  //         + sigma_s sqrt(1 - e^{-2 eta h}) z,   c = 1 + eta,
  // with x0(l) the multistep polynomial through the last x0_hat: 2M is Lu et al.'s Alg. 2 (D = x0 + (x0 - x0_prev) / 2r),
  // 3M the quadratic through three, integrated exactly (dpm_weights). For x0_hat constant every eta gives
  // x_s ~ N(alpha_s x0, sigma_s^2) exactly. The history of step k is committed when step k + 1 starts, so that a hook's
  // redo of step k reuses step k - 1's history, not its own.
  struct Point { Tensor x0; double lambda; };
  std::vector<Point> hist;  // committed, oldest first (at most 2)
  Point last;
  int64_t committed = -1;
  auto step = [&](const Tensor& x, int64_t k) {
    if (committed != k - 1) {
      if (last.x0.defined()) hist.push_back(last);
      if (hist.size() > 2) hist.erase(hist.begin());
      committed = k - 1;
    }
    const double t = grid[k], s = grid[k + 1];
    auto at = at_time(r.g, t), as = at_time(r.g, s);
    auto x0 = r.x0_hat(x, t);
    if (s <= 0.0) return x0;
    const double lt = at.logsnr / 2, h = as.logsnr / 2 - lt;  // step in lambda = log(alpha / sigma)
    last = {x0, lt};
    const int64_t q = std::min<int64_t>(dopt.order(), 1 + int64_t(hist.size()));
    const auto J = dpm_weights(h, c);
    Tensor integral;
    if (q == 1) {
      integral = J[0] * x0;
    } else if (q == 2) {  // r = h_{i-1} / h_i (Lu et al. 2022, Alg. 2)
      const double ratio = (lt - hist.back().lambda) / h;
      integral = J[0] * ((1.0 + 0.5 / ratio) * x0 - (0.5 / ratio) * hist.back().x0);
    } else {  // Newton form through (lt, x0), (lt - h1, D1), (lt - h1 - h2, D2): x0 + u d1 + u (u + h1) d2
      const auto &p1 = hist[1], &p2 = hist[0];
      const double h1 = lt - p1.lambda, h2 = p1.lambda - p2.lambda;
      auto d1 = (x0 - p1.x0) / h1, d1b = (p1.x0 - p2.x0) / h2;
      auto d2 = (d1 - d1b) / (h1 + h2);
      integral = J[0] * x0 + J[1] * (d1 + h1 * d2) + J[2] * (2.0 * d2);  // u (u + h1) = 2 (u^2 / 2) + h1 u
    }
    auto xs = (as.sigma / at.sigma) * std::exp(-eta * h) * x + as.alpha * integral;
    if (eta > 0) xs = xs + as.sigma * std::sqrt(-std::expm1(-2.0 * eta * h)) * randn_like_gen(xs, gen);
    return xs;
  };
  return run_reverse_steps(r.prior(shape, o, gen), grid, step, hook, gen, progress);
}

Tensor sample_pc(const Process& p, const DenoiseFn& f, const std::vector<double>& grid, at::IntArrayRef shape,
                 torch::Generator& gen, const Progress& progress, const SamplerOptions& o, const StepHook& hook) {
  torch::NoGradGuard ng;
  Run r(p, f, grid, shape, o, "pc");
  const auto po = pc_options(o.method);
  auto norm = [](const Tensor& v) { return v.reshape({v.size(0), -1}).norm(2, 1); };  // [B]
  auto step = [&](Tensor x, int64_t k) {
    const double t = grid[k], s = grid[k + 1];
    auto a = at_time(r.g, t);
    // Langevin corrector at t: step = 2 (snr ||z|| / ||score||)^2 per example (Song et al. 2021, Alg. 5).
    for (int64_t c = 0; c < po.corrector_steps(); ++c) {
      auto sc = r.score(x, t, a);
      auto z = randn_like_gen(x, gen);
      auto eps = per_example(2.0 * (po.snr() * norm(z) / norm(sc).clamp_min(1e-12)).pow(2), x);  // [B, 1...]
      x = x + eps * sc + torch::sqrt(2.0 * eps) * z;
    }
    return em_step(r, x, t, s, gen);  // predictor
  };
  return run_reverse_steps(r.prior(shape, o, gen), grid, step, hook, gen, progress);
}

}  // namespace gsdiff
