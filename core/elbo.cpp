// The negative ELBO estimator: Monte Carlo or exact over time, discrete or continuous.
#include "core/elbo.h"

#include "core/distributions.h"
#include "core/gaussian.h"
#include "core/quadrature.h"

namespace gsdiff {

using torch::Tensor;

Tensor time_like(const Tensor& x, double t) {
  return torch::full({x.size(0)}, t, torch::TensorOptions().dtype(torch::kFloat64).device(x.device()));
}

Tensor predict(const Process& p, const DenoiseFn& f, const Tensor& xt, const Tensor& t) {
  return p.read_output(f(p.network_input(xt, t), p.network_time(t)), xt, t);
}

Tensor sample_times(int64_t batch, double t_min, bool low_discrepancy, torch::Generator& gen, const torch::Device& device) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(gen.device());  // drawn where gen lives
  Tensor u;
  if (low_discrepancy) {
    auto u0 = at::rand({1}, gen, opts);
    u = torch::fmod(u0 + torch::arange(batch, opts) / double(batch), 1.0);
  } else {
    u = at::rand({batch}, gen, opts);
  }
  return (t_min + (1.0 - t_min) * u).to(device);
}

namespace {

// One discrete-time KL term per example at step indices i [B] (2 <= i <= T).
Tensor step_term(const Process& p, const DenoiseFn& f, const Tensor& x0, const Tensor& i, torch::Generator& gen) {
  auto T = double(p.steps());
  auto t = i.to(torch::kFloat64) / T, s = (i - 1).to(torch::kFloat64) / T;
  auto xt = p.sample_xt(x0, t, gen);
  return sum_dims(p.step_kl(x0, xt, s, t, predict(p, f, xt, t)));
}

Tensor integrand_term(const Process& p, const DenoiseFn& f, const Tensor& x0, const Tensor& t, torch::Generator& gen) {
  auto xt = p.sample_xt(x0, t, gen);
  return sum_dims(p.elbo_integrand(x0, xt, t, predict(p, f, xt, t)));
}

}  // namespace

namespace {

using Weighted = std::pair<Tensor, Tensor>;  // (times or step indices [B], importance weights [B] float64)

const GaussianProcess& gaussian_for_logsnr(const Process& p) {
  auto* g = dynamic_cast<const GaussianProcess*>(&p);
  if (!g) throw std::invalid_argument("time sampling 'logsnr' needs a Gaussian process, got '" + p.name() + "' (use uniform)");
  return *g;
}

// Continuous time, log-SNR uniform on [lambda(1), lambda(t_min)] (Song et al. 2021 sec. 5: p(t) ∝ g^2 / sigma^2
// = -lambda'(t) for VP and VE): t = lambda^-1 by bisection (lambda is decreasing), weight 1/p(t).
Weighted logsnr_times(const GaussianProcess& g, int64_t B, bool low_discrepancy, torch::Generator& gen, const torch::Device& dev) {
  const auto& sch = g.schedule();
  double hi_l = sch.at(torch::full({1}, g.t_min(), torch::kFloat64)).logsnr.item<double>();
  double lo_l = sch.at(torch::ones({1}, torch::kFloat64)).logsnr.item<double>();
  auto target = hi_l - (hi_l - lo_l) * sample_times(B, 0.0, low_discrepancy, gen, dev);  // [B]
  auto t = g.time_at_logsnr(target);  // bisection: lambda is decreasing
  return {t, (hi_l - lo_l) / (-sch.at(t).dlogsnr)};
}

// Discrete time, i in 2..T with P(i) ∝ lambda(t_{i-1}) - lambda(t_i), the grid analogue of logsnr_times.
Weighted logsnr_steps(const GaussianProcess& g, int64_t B, torch::Generator& gen, const torch::Device& dev) {
  const int64_t T = g.steps();
  auto lam = g.schedule().at(torch::arange(T + 1, torch::kFloat64) / double(T)).logsnr;  // [T + 1]
  auto drop = (lam.narrow(0, 1, T - 1) - lam.narrow(0, 2, T - 1)).clamp_min(0);         // steps 2..T  [T - 1]
  auto prob = drop / drop.sum();
  auto k = at::multinomial(prob.to(gen.device()), B, true, gen).cpu();                     // [B] in 0..T-2
  return {(k + 2).to(dev), (1.0 / prob.index_select(0, k)).to(dev)};
}

Weighted uniform_steps(int64_t T, int64_t B, torch::Generator& gen, const torch::Device& dev) {
  auto i = at::randint(2, T + 1, {B}, gen, torch::TensorOptions().dtype(torch::kLong).device(gen.device())).to(dev);
  return {i, torch::full({B}, double(T - 1), torch::TensorOptions().dtype(torch::kFloat64).device(dev))};
}

Weighted uniform_times(const Process& p, int64_t B, bool low_discrepancy, torch::Generator& gen, const torch::Device& dev) {
  auto t = sample_times(B, p.t_min(), low_discrepancy, gen, dev);
  return {t, torch::full({B}, 1.0 - p.t_min(), torch::TensorOptions().dtype(torch::kFloat64).device(dev))};
}

// The continuous-time diffusion term by quadrature in t; every node draws x_t from one noise stream.
Tensor quadrature_diffusion(const Process& p, const DenoiseFn& f, const Tensor& x0, torch::Generator& gen,
                            const ElboOptions& opts, ElboTerms& out) {
  auto seed = at::randint(0, int64_t(1) << 62, {1}, gen, torch::TensorOptions().dtype(torch::kLong).device(gen.device()))
                  .item<int64_t>();  // forks the stream, so gen moves on
  const int64_t R = std::max<int64_t>(1, opts.noise_samples());
  auto node = [&](double t) {
    Tensor sum;
    for (int64_t r = 0; r < R; ++r) {  // stream r: the same noise at every node
      auto g = make_generator(gen.device(), uint64_t(seed) + uint64_t(r) * 0x9E3779B97F4A7C15ULL);
      auto v = integrand_term(p, f, x0, time_like(x0, t), g).to(torch::kFloat64);  // [B]
      sum = sum.defined() ? sum + v : v;
    }
    return sum / double(R);
  };
  if (opts.quadrature_nodes() > 0) {
    auto [nodes, weights] = gauss_legendre(int(opts.quadrature_nodes()), p.t_min(), 1.0);
    Tensor diff = torch::zeros({x0.size(0)}, torch::TensorOptions().dtype(torch::kFloat64).device(x0.device()));
    for (size_t k = 0; k < nodes.size(); ++k) diff += weights[k] * node(nodes[k]);
    out.nodes = opts.quadrature_nodes();
    out.converged = false;
    return diff;
  }
  const double tol = opts.quadrature_tol() * double(x0[0].numel());  // nats per example
  auto r = integrate_adaptive(node, p.t_min(), 1.0, tol, opts.max_nodes());
  out.nodes = r.evaluations;
  out.quadrature_error = r.error;
  out.converged = r.converged;
  return r.value;
}

}  // namespace

ElboTerms negative_elbo(const Process& p, const DenoiseFn& f, const Tensor& x0, torch::Generator& gen,
                        const ElboOptions& opts) {
  const int64_t B = x0.size(0);
  auto dev = x0.device();
  ElboTerms out;
  out.prior = sum_dims(p.prior_kl(x0)).to(torch::kFloat64);

  // Reconstruction: -log p(x0 | x_{t_1}) (discrete) or at t_min (continuous).
  double t_rec = p.continuous_time() ? p.t_min() : p.grid_time(1);
  auto tr = time_like(x0, t_rec);
  auto xr = p.sample_xt(x0, tr, gen);
  out.reconstruction = sum_dims(p.reconstruction(x0, xr, tr, predict(p, f, xr, tr))).to(torch::kFloat64);

  auto diff = torch::zeros({B}, torch::TensorOptions().dtype(torch::kFloat64).device(dev));
  const int64_t n = std::max<int64_t>(1, opts.time_samples());
  const bool logsnr = opts.time_sampling() == "logsnr";
  if (!logsnr && opts.time_sampling() != "uniform")
    throw std::invalid_argument("time sampling must be uniform or logsnr, got '" + opts.time_sampling() + "'");
  if (!p.continuous_time()) {
    const int64_t T = p.steps();
    out.converged = opts.exact() || T < 2;
    if (T >= 2 && opts.exact()) {
      for (int64_t i = 2; i <= T; ++i)
        diff += step_term(p, f, x0, torch::full({B}, i, torch::TensorOptions().dtype(torch::kLong).device(dev)), gen).to(torch::kFloat64);
      out.nodes = T - 1;
    } else if (T >= 2) {
      for (int64_t k = 0; k < n; ++k) {
        auto [i, w] = logsnr ? logsnr_steps(gaussian_for_logsnr(p), B, gen, dev) : uniform_steps(T, B, gen, dev);
        diff += w / double(n) * step_term(p, f, x0, i, gen).to(torch::kFloat64);
      }
      out.nodes = n;
    }
  } else if (opts.exact()) {
    diff = quadrature_diffusion(p, f, x0, gen, opts, out);
  } else {
    for (int64_t k = 0; k < n; ++k) {
      auto [t, w] = logsnr ? logsnr_times(gaussian_for_logsnr(p), B, opts.low_discrepancy(), gen, dev)
                           : uniform_times(p, B, opts.low_discrepancy(), gen, dev);
      diff += w / double(n) * integrand_term(p, f, x0, t, gen).to(torch::kFloat64);
    }
    out.nodes = n;
  }
  out.diffusion = diff;
  return out;
}

namespace {

// Each example's term: its time, whether it is the reconstruction, its importance weight 1 / P, its bin.
struct Picked {
  Tensor t, rec, weight, bin;  // [B] float64, bool, float64, long (or undefined)
};

// u [B] in [0, 1) -> bin k [B] by the cumulative probabilities, and u's position inside the bin, in [0, 1).
std::pair<Tensor, Tensor> invert_bins(const Tensor& probs, const Tensor& u) {
  auto cdf = probs.cumsum(0);                                                             // [N]
  auto k = torch::searchsorted(cdf, u, false, true).clamp_max(probs.size(0) - 1);      // [B]: first cdf > u
  auto pk = probs.index_select(0, k);                                                     // [B]
  auto frac = ((u - (cdf.index_select(0, k) - pk)) / pk).clamp(0.0, 1.0 - 1e-12);     // [B]
  return {k, frac};
}

Picked pick_binned(const Process& p, int64_t B, const OneCallOptions& o, torch::Generator& gen, const torch::Device& dev) {
  auto probs = o.bin_probs().to(dev, torch::kFloat64);
  probs = probs / probs.sum();
  const int64_t N = probs.size(0);
  auto [k, frac] = invert_bins(probs, sample_times(B, 0.0, o.low_discrepancy(), gen, dev));
  auto pk = probs.index_select(0, k);  // [B]
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(dev);
  if (!p.continuous_time()) {
    TORCH_CHECK(N == p.steps(), "sample_negative_elbo: bin_probs has ", N, " bins; discrete time needs T = ", p.steps());
    auto i = k + 1;  // term L_{i-1}: i = 1 is the reconstruction
    return {i.to(torch::kFloat64) / double(N), i == 1, 1.0 / pk, k};
  }
  const double q = o.reconstruction_prob(), width = (1.0 - p.t_min()) / double(N);
  auto rec = (at::rand({B}, gen, f64.device(gen.device())) < q).to(dev);  // [B]
  auto td = p.t_min() + width * (k.to(torch::kFloat64) + frac);           // [B]
  auto t = torch::where(rec, torch::full_like(td, p.t_min()), td);
  auto w = torch::where(rec, torch::full({B}, 1.0 / q, f64), width / (pk * (1.0 - q)));  // 1 / density
  return {t, rec, w, torch::where(rec, torch::full_like(k, -1), k)};
}

Picked pick_uniform_or_logsnr(const Process& p, int64_t B, const OneCallOptions& o, torch::Generator& gen,
                              const torch::Device& dev) {
  const bool logsnr = o.time_sampling() == "logsnr";
  if (!logsnr && o.time_sampling() != "uniform")
    throw std::invalid_argument("time sampling must be uniform or logsnr, got '" + o.time_sampling() + "'");
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(dev);
  if (!p.continuous_time()) {
    const int64_t T = p.steps();
    if (!logsnr || T < 2) {  // i ~ U{1..T}, weight T (DDPM's L_simple sampling, unweighted)
      auto i = at::randint(1, T + 1, {B}, gen, torch::TensorOptions().dtype(torch::kLong).device(gen.device())).to(dev);
      return {i.to(torch::kFloat64) / double(T), i == 1, torch::full({B}, double(T), f64), {}};
    }
    auto rec = (at::rand({B}, gen, f64.device(gen.device())) < 1.0 / double(T)).to(dev);  // [B]
    auto [i, w] = logsnr_steps(gaussian_for_logsnr(p), B, gen, dev);                       // i in 2..T, w = 1 / P(i)
    i = torch::where(rec, torch::ones_like(i), i);
    w = torch::where(rec, torch::full({B}, double(T), f64), w * (double(T) / double(T - 1)));
    return {i.to(torch::kFloat64) / double(T), rec, w, {}};
  }
  const double q = o.reconstruction_prob();
  auto rec = (at::rand({B}, gen, f64.device(gen.device())) < q).to(dev);  // [B]
  auto [td, wd] = logsnr ? logsnr_times(gaussian_for_logsnr(p), B, o.low_discrepancy(), gen, dev)
                         : uniform_times(p, B, o.low_discrepancy(), gen, dev);
  auto t = torch::where(rec, torch::full_like(td, p.t_min()), td);
  auto w = torch::where(rec, torch::full({B}, 1.0 / q, f64), wd / (1.0 - q));
  return {t, rec, w, {}};
}

}  // namespace

ElboSample sample_negative_elbo(const Process& p, const DenoiseFn& f, const Tensor& x0, torch::Generator& gen,
                                const OneCallOptions& opts) {
  const int64_t B = x0.size(0);
  auto dev = x0.device();
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  ElboSample out;
  out.terms.prior = sum_dims(p.prior_kl(x0)).to(torch::kFloat64);  // [B]

  // Which term each example scores, at which time, with which weight.
  if (p.continuous_time())
    TORCH_CHECK(opts.reconstruction_prob() > 0 && opts.reconstruction_prob() < 1,
                "sample_negative_elbo: reconstruction_prob must lie in (0, 1), got ", opts.reconstruction_prob());
  Picked pick = opts.bin_probs().defined() ? pick_binned(p, B, opts, gen, dev) : pick_uniform_or_logsnr(p, B, opts, gen, dev);
  out.t = pick.t;
  out.weight = pick.weight;
  out.bin = pick.bin;
  const Tensor rec = pick.rec;
  out.reconstruction_rows = rec;

  // The one network call.
  out.xt = p.sample_xt(x0, out.t, gen);       // [B, ...]
  out.pred = predict(p, f, out.xt, out.t);    // [B, ...]

  // Each term on its own rows only (an unselected row may be non-finite there; masking by multiplication
  // would turn that into NaN gradients). nonzero() is one host sync on CUDA.
  auto zeros = torch::zeros({B}, f64.device(dev));
  auto rows = [&](const Tensor& mask, const auto& term) -> Tensor {
    auto idx = mask.nonzero().squeeze(1);  // [n]
    if (idx.numel() == 0) return zeros;
    auto v = term(x0.index_select(0, idx), out.xt.index_select(0, idx), out.t.index_select(0, idx),
                  out.pred.index_select(0, idx));
    return zeros.index_add(0, idx, sum_dims(v).to(torch::kFloat64));  // [B]
  };
  out.terms.reconstruction = pick.weight * rows(rec, [&](const Tensor& a, const Tensor& xt, const Tensor& t, const Tensor& pr) {
    return p.reconstruction(a, xt, t, pr);
  });
  const double dt = p.continuous_time() ? 0.0 : 1.0 / double(p.steps());
  out.terms.diffusion = pick.weight * rows(rec.logical_not(), [&](const Tensor& a, const Tensor& xt, const Tensor& t, const Tensor& pr) {
    return p.continuous_time() ? p.elbo_integrand(a, xt, t, pr) : p.step_kl(a, xt, t - dt, t, pr);
  });
  return out;
}

}  // namespace gsdiff
