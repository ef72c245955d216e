// Diagonal Gaussian and categorical distributions: log-prob, KL, entropy, seeded sampling.
#pragma once
#include <torch/torch.h>

namespace gsdiff {

// N(mean, diag(exp(log_std)^2)), element-wise; every method returns per-element values.
struct DiagGaussian {
  torch::Tensor mean, log_std;

  DiagGaussian(torch::Tensor mean, torch::Tensor log_std) : mean(std::move(mean)), log_std(std::move(log_std)) {}
  static DiagGaussian from_var(const torch::Tensor& mean, const torch::Tensor& var) {
    return DiagGaussian(mean, 0.5 * torch::log(var));
  }

  torch::Tensor log_prob(const torch::Tensor& x) const;         // log N(x; mean, std^2)
  torch::Tensor entropy() const;                                // 1/2 log(2 pi e std^2)
  torch::Tensor kl(const DiagGaussian& other) const;            // KL(this || other)
  torch::Tensor sample(torch::Generator& gen) const;            // mean + std * eps
};

// Cat(softmax(logits)) over the last dimension.
struct Categorical {
  torch::Tensor logits;  // [..., K], any normalisation; log_probs() normalises

  explicit Categorical(torch::Tensor logits) : logits(std::move(logits)) {}
  static Categorical from_probs(const torch::Tensor& probs) { return Categorical(torch::log(probs)); }

  torch::Tensor log_probs() const { return torch::log_softmax(logits, -1); }  // [..., K]
  torch::Tensor probs() const { return torch::softmax(logits, -1); }
  torch::Tensor log_prob(const torch::Tensor& x) const;  // x int64 [...] -> [...]
  torch::Tensor entropy() const;                          // [...], 0 log 0 = 0
  torch::Tensor kl(const Categorical& other) const;       // [...], KL(this || other), 0 log 0 = 0
  torch::Tensor sample(torch::Generator& gen) const;      // int64 [...]
};

// KL(p || q) between probability vectors on the last axis, with 0 log 0 = 0 (p may have zeros).
torch::Tensor categorical_kl_probs(const torch::Tensor& p, const torch::Tensor& q);

// One draw per row of `probs` [..., K] (rows need not be exactly normalised) by inverse CDF.
torch::Tensor sample_categorical(const torch::Tensor& probs, torch::Generator& gen);

// One draw per row of log-probabilities logp [..., K] (unnormalised allowed, -inf = excluded) by Gumbel-max:
// argmax(logp + g), g = -log(-log u), u uniform drawn in float64. Float32 noise is capped at
// -log(-log(1 - 2^-24)) = 16.64 (and bounded below by -2.81), so a token whose log-odds against the favourite are below
// about -19.4 (p ~ 4e-9) is never drawn, and rarer tokens up to p ~ 1e-7 lose much of their mass; float64's cap is
// 36.7 (tests/sample/token_filter_test.cpp). The discrete samplers' reverse draws use it.
torch::Tensor sample_gumbel_max(const torch::Tensor& logp, torch::Generator& gen);
// The same from probabilities [..., K] (need not be normalised; zero or negative entries are never drawn).
torch::Tensor sample_categorical_gumbel(const torch::Tensor& probs, torch::Generator& gen);

// Standard normal / uniform noise from an explicit generator, shaped like `like` or `shape`.
// A generator on `device` seeded with `seed` (a CUDA device gets its own CUDA generator, so noise is drawn
// where the tensors live; every random draw in gsdiff takes its generator explicitly).
torch::Generator make_generator(const torch::Device& device, uint64_t seed);
torch::Tensor randn_like_gen(const torch::Tensor& like, torch::Generator& gen);
torch::Tensor rand_gen(at::IntArrayRef shape, const torch::TensorOptions& opts, torch::Generator& gen);

}  // namespace gsdiff
