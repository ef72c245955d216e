// Gaussian diffusion on token codes: codebooks, options, the exact categorical decoder and per-token terms.
#include "core/embedded_gaussian.h"

#include <cmath>

#include "core/options.h"

namespace gsdiff {

using torch::Tensor;

const std::vector<std::string>& codebook_names() {
  static const std::vector<std::string> names = {"analog-bits", "onehot"};
  return names;
}

Tensor make_codebook(const std::string& kind, int64_t K, double scale) {
  if (K < 2) throw ConfigError("codebook: K must be >= 2, got " + std::to_string(K));
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  if (kind == "onehot") return scale * torch::eye(K, f64);  // [K, K]
  if (kind == "analog-bits") {
    int64_t d = 0;
    while ((int64_t(1) << d) < K) ++d;                      // d = ceil(log2 K)
    auto E = torch::empty({K, d}, f64);                      // [K, d]
    auto acc = E.accessor<double, 2>();
    for (int64_t k = 0; k < K; ++k)  // bit b of k -> +scale, else -scale (Chen et al. 2022, sec. 2)
      for (int64_t b = 0; b < d; ++b) acc[k][b] = ((k >> b) & 1) ? scale : -scale;
    return E;
  }
  throw ConfigError("process 'gaussian-embed': field 'codebook' must be one of " + JsonReader::join(codebook_names()) +
                    ", got '" + kind + "'");
}

namespace {
// The gaussian-vp schedule fields this process accepts (parameterization and the 8-bit decoder are fixed).
const std::vector<std::string> kScheduleFields = {"schedule", "steps", "t_min", "beta_min", "beta_max",
                                                  "cosine_s", "logsnr_min", "logsnr_max"};
}  // namespace

EmbeddedGaussianOptions embedded_gaussian_options_from_json(const nlohmann::json& j) {
  EmbeddedGaussianOptions o;
  JsonReader r(j, "process 'gaussian-embed'");
  r.get<std::string>("name", "");
  o.K(r.get<int64_t>("K", o.K()));
  o.codebook(r.get<std::string>("codebook", o.codebook()));
  o.scale(r.get<double>("scale", o.scale()));
  o.dtype(r.choice("dtype", o.dtype(), {"float32", "float64"}));
  nlohmann::json sched = {{"schedule", o.gaussian().schedule()}, {"steps", o.gaussian().steps()},
                          {"logsnr_min", o.gaussian().logsnr_min()}, {"logsnr_max", o.gaussian().logsnr_max()}};
  for (const auto& k : kScheduleFields)
    if (!r.raw(k).is_null()) sched[k] = r.raw(k);
  r.finish();
  if (o.K() < 2) r.fail("K", "must be >= 2, got " + std::to_string(o.K()));
  if (!(o.scale() > 0)) r.fail("scale", "must be > 0");
  make_codebook(o.codebook(), o.K(), o.scale());  // an unknown codebook fails here, listing the known ones
  o.gaussian(gaussian_options_from_json(sched, "vp"));
  return o;
}

nlohmann::json to_json(const EmbeddedGaussianOptions& o) {
  const auto& g = o.gaussian();
  return {{"name", "gaussian-embed"}, {"K", o.K()}, {"codebook", o.codebook()}, {"scale", o.scale()},
          {"dtype", o.dtype()}, {"schedule", g.schedule()}, {"steps", g.steps()}, {"t_min", g.t_min()},
          {"beta_min", g.beta_min()}, {"beta_max", g.beta_max()}, {"cosine_s", g.cosine_s()},
          {"logsnr_min", g.logsnr_min()}, {"logsnr_max", g.logsnr_max()}};
}

EmbeddedGaussianProcess::EmbeddedGaussianProcess(EmbeddedGaussianOptions opts)
    : GaussianProcess(opts.gaussian().family("vp")),
      eopts_(std::move(opts)),
      codes_(make_codebook(eopts_.codebook(), eopts_.K(), eopts_.scale())),
      dtype_(eopts_.dtype() == "float64" ? torch::kFloat64 : torch::kFloat32) {
  eopts_.gaussian(options());  // the resolved t_min
}

nlohmann::json EmbeddedGaussianProcess::options_json() const { return to_json(eopts_); }

Tensor EmbeddedGaussianProcess::embed(const Tensor& x0) const {
  if (x0.is_floating_point()) return x0;
  auto sizes = x0.sizes().vec();
  sizes.push_back(code_dim());
  auto E = codes_.to(x0.device(), dtype_);                         // [K, d]
  return E.index_select(0, x0.reshape({-1}).to(torch::kLong)).reshape(sizes);  // [B, L, d]
}

Tensor EmbeddedGaussianProcess::to_data(const Tensor& x) const {
  if (!x.is_floating_point()) return x;
  auto E = codes_.to(x.device());                                  // [K, d]
  // Nearest code: argmin ||x - e_k||^2 = argmax x . e_k - ||e_k||^2 / 2.
  auto score = torch::matmul(x.to(torch::kFloat64), E.t()) - 0.5 * E.pow(2).sum(1);  // [B, L, K]
  return score.argmax(-1);                                         // [B, L] int64
}

Tensor EmbeddedGaussianProcess::decoder_log_probs(const Tensor& z, const Tensor& t) const {
  auto v = schedule().at(t.to(torch::kFloat64));                   // [B]
  auto zz = z.to(torch::kFloat64);                                 // [B, L, d]
  auto a = per_example(v.alpha, zz), s2 = per_example(v.sigma * v.sigma, zz);  // [B, 1, 1]
  auto E = codes_.to(z.device());                                  // [K, d]
  // -||z - alpha e_k||^2 / (2 sigma^2) up to a term constant in k (Bayes with a uniform prior over k).
  auto logits = (a * torch::matmul(zz, E.t()) - 0.5 * a * a * E.pow(2).sum(1)) / s2;  // [B, L, K]
  return torch::log_softmax(logits, -1);
}

Tensor EmbeddedGaussianProcess::sample_xt(const Tensor& x0, const Tensor& t, torch::Generator& gen) const {
  return GaussianProcess::sample_xt(embed(x0), t, gen);            // [B, L, d]
}

Tensor EmbeddedGaussianProcess::sample_prior(at::IntArrayRef shape, const torch::TensorOptions& opts,
                                             torch::Generator& gen) const {
  auto sizes = shape.vec();
  sizes.push_back(code_dim());
  return GaussianProcess::sample_prior(sizes, opts, gen);         // [N, L, d]
}

Tensor EmbeddedGaussianProcess::prior_kl(const Tensor& x0) const {
  return GaussianProcess::prior_kl(embed(x0)).sum(-1);            // [B, L]
}

Tensor EmbeddedGaussianProcess::read_output(const Tensor& out, const Tensor& xt, const Tensor& t) const {
  // x0_hat = sum_k softmax(logits)_k e_k (Dieleman et al. 2022, CDCD).
  return torch::matmul(torch::softmax(out, -1), codes_.to(out.device(), out.scalar_type()));  // [B, L, d]
}

Tensor EmbeddedGaussianProcess::reconstruction(const Tensor& x0, const Tensor& xt, const Tensor& t,
                                               const Tensor&) const {
  auto logp = decoder_log_probs(xt, t);                            // [B, L, K]
  return -logp.gather(-1, x0.to(torch::kLong).unsqueeze(-1)).squeeze(-1);  // [B, L]
}

Tensor EmbeddedGaussianProcess::step_kl(const Tensor& x0, const Tensor& xt, const Tensor& s, const Tensor& t,
                                        const Tensor& x0_hat) const {
  return GaussianProcess::step_kl(embed(x0).to(x0_hat.scalar_type()), xt, s, t, x0_hat).sum(-1);  // [B, L]
}

Tensor EmbeddedGaussianProcess::elbo_integrand(const Tensor& x0, const Tensor& xt, const Tensor& t,
                                               const Tensor& x0_hat) const {
  return GaussianProcess::elbo_integrand(embed(x0).to(x0_hat.scalar_type()), xt, t, x0_hat).sum(-1);  // [B, L]
}

}  // namespace gsdiff
