// Gaussian diffusion on fixed token embeddings (analog bits / scaled one-hot) with a categorical decoder.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/gaussian.h"

namespace gsdiff {

// Fixed code vectors e_k in R^d for K categories, as a [K, d] float64 matrix E.
//   "analog-bits" (Chen et al. 2022, Analog Bits): d = ceil(log2 K), e_k[b] = +scale if bit b of k is set, else -scale;
//   "onehot" (the simplex corners, as in CDCD's one-hot ablation, Dieleman et al. 2022): d = K, e_k = scale * onehot(k).
// Every code has the same norm, so the nearest code to z is argmax_k z . e_k.
torch::Tensor make_codebook(const std::string& kind, int64_t K, double scale = 1.0);  // [K, d]
const std::vector<std::string>& codebook_names();

struct EmbeddedGaussianOptions {
  TORCH_ARG(int64_t, K) = 27;                       // categories (text8: a-z and space)
  TORCH_ARG(std::string, codebook) = "analog-bits";  // analog-bits | onehot
  TORCH_ARG(double, scale) = 1.0;                   // code entries are +-scale (analog-bits) or scale (onehot)
  TORCH_ARG(std::string, dtype) = "float32";        // state dtype: float32 | float64
  // The VP schedule on z (family vp; parameterization and the 8-bit decoder are not used).
  TORCH_ARG(GaussianOptions, gaussian) = GaussianOptions().schedule("linear-logsnr").steps(0).logsnr_max(6.0).logsnr_min(-10.0);
};

// Options from JSON: K, codebook, scale, dtype, and the gaussian-vp schedule fields (schedule, steps, t_min,
// beta_min, beta_max, cosine_s, logsnr_min, logsnr_max). An unknown codebook lists the known ones.
EmbeddedGaussianOptions embedded_gaussian_options_from_json(const nlohmann::json& j);
nlohmann::json to_json(const EmbeddedGaussianOptions& o);

// Data x0: int64 tokens [B, L] in [0, K). State z_t: float [B, L, d], q(z_t | x0) = N(alpha_t e(x0), sigma_t^2 I).
// The network sees z_t [B, L, d] and returns K logits per position [B, L, K]; read_output makes
// x0_hat = softmax(logits) E [B, L, d] (CDCD's score interpolation, Dieleman et al. 2022), so every Gaussian
// term and sampler runs unchanged on z. Terms are nats per token [B, L] (summed over the d code dimensions):
//   continuous time: 1/2 (-dSNR/dt) ||e(x0) - x0_hat||^2 (VDM eq. 17);  discrete: 1/2 (SNR(s) - SNR(t)) ||.||^2;
//   prior: KL(N(alpha_1 e(x0), sigma_1^2 I) || N(0, I));
//   reconstruction: -log p(x0 | z) with the exact decoder p(x = k | z) ∝ exp(-||z - alpha e_k||^2 / (2 sigma^2))
//   under a uniform prior over k (VDM's decoder for discrete data, Kingma et al. 2021 App. C), at t_min / t_1.
class EmbeddedGaussianProcess : public GaussianProcess {
 public:
  explicit EmbeddedGaussianProcess(EmbeddedGaussianOptions opts);

  std::string name() const override { return "gaussian-embed"; }
  nlohmann::json options_json() const override;  // resolved (t_min included)
  int64_t num_categories() const override { return eopts_.K(); }
  int64_t num_states() const override { return eopts_.K(); }
  const EmbeddedGaussianOptions& embed_options() const { return eopts_; }
  int64_t code_dim() const { return codes_.size(1); }
  const torch::Tensor& codebook() const { return codes_; }  // [K, d] float64

  // e(x0): tokens [B, L] -> codes [B, L, d] in the state dtype; a float input is taken as already embedded.
  torch::Tensor embed(const torch::Tensor& x0) const override;
  // A final state or x0_hat [B, L, d] -> the nearest code's token [B, L] (= the decoder's argmax at any t);
  // int64 input passes through.
  torch::Tensor to_data(const torch::Tensor& x) const override;
  // log p(x = k | z_t) [B, L, K] of the exact decoder (normalised over k).
  torch::Tensor decoder_log_probs(const torch::Tensor& z, const torch::Tensor& t) const;

  torch::Tensor sample_xt(const torch::Tensor& x0, const torch::Tensor& t, torch::Generator& gen) const override;
  // `shape` is the data's shape [N, L]; the draw is [N, L, d].
  torch::Tensor sample_prior(at::IntArrayRef shape, const torch::TensorOptions& opts, torch::Generator& gen) const override;
  torch::Tensor prior_kl(const torch::Tensor& x0) const override;
  torch::Tensor read_output(const torch::Tensor& out, const torch::Tensor& xt, const torch::Tensor& t) const override;
  torch::Tensor reconstruction(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& x0_hat) const override;
  torch::Tensor step_kl(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& s,
                        const torch::Tensor& t, const torch::Tensor& x0_hat) const override;
  torch::Tensor elbo_integrand(const torch::Tensor& x0, const torch::Tensor& xt, const torch::Tensor& t,
                               const torch::Tensor& x0_hat) const override;

 private:
  EmbeddedGaussianOptions eopts_;
  torch::Tensor codes_;  // E [K, d], float64
  torch::ScalarType dtype_;
};

}  // namespace gsdiff
