// AdamW over flat parameter buffers (decoupled weight decay, bias correction), with its checkpoint state.
#include "train/fused_adamw.h"

#include <algorithm>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <cmath>
#include <stdexcept>
#include <string>

namespace gsdiff {

namespace {
constexpr const char* kFormat = "gsdiff-fused-adamw-1";

// The update's constants, each rounded to float once as ATen rounds a double Scalar for a float tensor.
struct AdamWFloat {
  float decay, beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bc2, eps, neg_step;
};

// Elements [from, n) in one pass, per element the arithmetic of step()'s op sequence as LibTorch 1.13's
// vectorised CPU kernels do it (equal bit for bit to the ops on an AVX-512 EPYC: tests/train/fused_adamw_test.cpp;
// on LibTorch 2.13 too, except that ATen's float sqrt there is not correctly rounded and this one is):
//   p.mul_(decay)                      p * decay
//   m.mul_(b1).add_(g, 1 - b1)         fma(g, 1 - b1, m * b1)          (ufunc add: vec::fmadd)
//   v.mul_(b2).addcmul_(g, g, 1 - b2)  fma((1 - b2) * g, g, v * b2)    (compiled to an FMA)
//   sqrt(v).div_(sqrt(bc2)).add_(eps)  sqrt(v) / sqrt(bc2) + eps       (a division, not a reciprocal)
//   p.addcdiv_(m, den, -step)          p + (-step * m) / den
// The product p * decay must round before its sum (the ops round twice): an empty asm makes it opaque
// to the compiler, which would otherwise contract the two into one FMA.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GSDIFF_NO_CONTRACT(x) __asm__("" : "+x"(x))
#else
#define GSDIFF_NO_CONTRACT(x) (void)0
#endif

void adamw_scalar(float* p, const float* g, float* m, float* v, int64_t from, int64_t n, const AdamWFloat& c) {
  for (int64_t i = from; i < n; ++i) {
    const float gi = g[i];
    const float mi = std::fma(gi, c.one_minus_beta1, m[i] * c.beta1);
    const float vi = std::fma(c.one_minus_beta2 * gi, gi, v[i] * c.beta2);
    const float den = std::sqrt(vi) / c.sqrt_bc2 + c.eps;
    float pd = p[i] * c.decay;
    GSDIFF_NO_CONTRACT(pd);
    p[i] = pd + c.neg_step * mi / den;
    m[i] = mi;
    v[i] = vi;
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GSDIFF_ADAMW_AVX2 1
// The same, 8 floats at a time. Returns the first element left for adamw_scalar.
__attribute__((target("avx2,fma"))) int64_t adamw_avx2(float* p, const float* g, float* m, float* v, int64_t n,
                                                       const AdamWFloat& c) {
  const __m256 decay = _mm256_set1_ps(c.decay), b1 = _mm256_set1_ps(c.beta1), omb1 = _mm256_set1_ps(c.one_minus_beta1),
               b2 = _mm256_set1_ps(c.beta2), omb2 = _mm256_set1_ps(c.one_minus_beta2),
               sbc2 = _mm256_set1_ps(c.sqrt_bc2), eps = _mm256_set1_ps(c.eps), nstep = _mm256_set1_ps(c.neg_step);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 mi = _mm256_fmadd_ps(gi, omb1, _mm256_mul_ps(_mm256_loadu_ps(m + i), b1));
    const __m256 vi = _mm256_fmadd_ps(_mm256_mul_ps(omb2, gi), gi, _mm256_mul_ps(_mm256_loadu_ps(v + i), b2));
    const __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), sbc2), eps);
    __m256 pd = _mm256_mul_ps(_mm256_loadu_ps(p + i), decay);
    GSDIFF_NO_CONTRACT(pd);
    const __m256 pi = _mm256_add_ps(pd, _mm256_div_ps(_mm256_mul_ps(nstep, mi), den));
    _mm256_storeu_ps(p + i, pi);
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
  }
  return i;
}
#endif

bool one_pass_ok(const torch::Tensor& p, const torch::Tensor& g, const torch::Tensor& m, const torch::Tensor& v) {
  for (const auto* t : {&p, &g, &m, &v})
    if (!t->device().is_cpu() || t->scalar_type() != torch::kFloat || !t->is_contiguous()) return false;
  return true;
}
}  // namespace

FusedAdamW::FusedAdamW(FlatParams& flat, AdamWHyper h) : flat_(flat), h_(h) {
  for (const auto& g : flat_.groups()) {
    m_.push_back(torch::zeros_like(g.data));      // [N]
    v_.push_back(torch::zeros_like(g.data));      // [N]
    denom_.push_back(torch::empty_like(g.data));  // [N]
  }
}

void FusedAdamW::step() {
  torch::NoGradGuard ng;
  ++step_;
  const double bias_correction1 = 1 - std::pow(h_.beta1, double(step_));
  const double bias_correction2 = 1 - std::pow(h_.beta2, double(step_));
  const double step_size = h_.lr / bias_correction1;
  auto& groups = flat_.groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    auto& p = groups[i].data;
    const auto& g = groups[i].grad;
    if (one_pass_ok(p, g, m_[i], v_[i])) {
      // float32 on the CPU: one pass over the buffers instead of 9 (each of those reads and writes whole
      // [N] buffers, so the ops' passes cost more than their arithmetic).
      const AdamWFloat c{static_cast<float>(h_.weight_decay != 0 ? 1 - h_.lr * h_.weight_decay : 1.0),
                         static_cast<float>(h_.beta1), static_cast<float>(1 - h_.beta1),
                         static_cast<float>(h_.beta2), static_cast<float>(1 - h_.beta2),
                         static_cast<float>(std::sqrt(bias_correction2)), static_cast<float>(h_.eps),
                         static_cast<float>(-step_size)};
      float* pp = p.data_ptr<float>();
      float* mp = m_[i].data_ptr<float>();
      float* vp = v_[i].data_ptr<float>();
      const float* gp = g.data_ptr<float>();
      const int64_t n = p.numel();
      int64_t done = 0;
#if defined(GSDIFF_ADAMW_AVX2)
      if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) done = adamw_avx2(pp, gp, mp, vp, n, c);
#endif
      adamw_scalar(pp, gp, mp, vp, done, n, c);
      p.unsafeGetTensorImpl()->bump_version();  // as the in-place ops would (autograd's saved-tensor checks)
      continue;
    }
    if (h_.weight_decay != 0) p.mul_(1 - h_.lr * h_.weight_decay);
    m_[i].mul_(h_.beta1).add_(g, 1 - h_.beta1);
    v_[i].mul_(h_.beta2).addcmul_(g, g, 1 - h_.beta2);
    torch::sqrt_out(denom_[i], v_[i]).div_(std::sqrt(bias_correction2)).add_(h_.eps);
    p.addcdiv_(m_[i], denom_[i], -step_size);
  }
}

void flat_sgd_step(FlatParams& flat, double lr, double weight_decay) {
  torch::NoGradGuard ng;
  for (auto& g : flat.groups()) {
    if (weight_decay != 0) g.grad.add_(g.data, weight_decay);
    g.data.add_(g.grad, -lr);  // in place on the base: the parameter views see it (shared version counter)
  }
}

void FusedAdamW::save(torch::serialize::OutputArchive& ar) const {
  ar.write("format", c10::IValue(std::string(kFormat)));
  ar.write("step", c10::IValue(step_));
  ar.write("groups", c10::IValue(static_cast<int64_t>(m_.size())));
  for (size_t i = 0; i < m_.size(); ++i) {
    ar.write("exp_avg." + std::to_string(i), m_[i]);
    ar.write("exp_avg_sq." + std::to_string(i), v_[i]);
  }
}

void FusedAdamW::load(torch::serialize::InputArchive& ar) {
  c10::IValue format;
  if (!ar.try_read("format", format)) return load_torch_adamw(ar);
  if (format.toStringRef() != kFormat)
    throw std::runtime_error("optimizer state: unknown format '" + format.toStringRef() + "'");
  c10::IValue step, groups;
  ar.read("step", step);
  ar.read("groups", groups);
  if (groups.toInt() != static_cast<int64_t>(m_.size()))
    throw std::runtime_error("optimizer state: " + std::to_string(groups.toInt()) + " parameter groups, this model has " +
                             std::to_string(m_.size()));
  torch::NoGradGuard ng;
  auto read = [&](const std::string& key, torch::Tensor& dst) {
    torch::Tensor t;
    ar.read(key, t);
    if (t.sizes() != dst.sizes())
      throw std::runtime_error("optimizer state: '" + key + "' has " + std::to_string(t.numel()) +
                               " elements, this model " + std::to_string(dst.numel()));
    dst.copy_(t);
  };
  for (size_t i = 0; i < m_.size(); ++i) {
    read("exp_avg." + std::to_string(i), m_[i]);
    read("exp_avg_sq." + std::to_string(i), v_[i]);
  }
  step_ = step.toInt();
}

// A torch::optim::AdamW archive (checkpoints written before the fused optimizer): read into a
// temporary torch optimizer over the same parameters, then copy its per-tensor state into the slices.
void FusedAdamW::load_torch_adamw(torch::serialize::InputArchive& ar) {
  torch::optim::AdamW legacy(flat_.params(), torch::optim::AdamWOptions(h_.lr));
  legacy.load(ar);
  torch::NoGradGuard ng;
  step_ = 0;
  auto& groups = flat_.groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    m_[i].zero_();
    v_[i].zero_();
    for (size_t k = 0; k < groups[i].index.size(); ++k) {
      const auto& p = flat_.params()[groups[i].index[k]];
      auto it = legacy.state().find(torch_optim_state_key(p));
      if (it == legacy.state().end()) continue;  // never stepped: zero moments
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      if (s.exp_avg().numel() != p.numel()) throw std::runtime_error("optimizer state: parameter sizes differ");
      m_[i].narrow(0, groups[i].offset[k], p.numel()).copy_(s.exp_avg().reshape({-1}));
      v_[i].narrow(0, groups[i].offset[k], p.numel()).copy_(s.exp_avg_sq().reshape({-1}));
      step_ = std::max(step_, s.step());
    }
  }
}

}  // namespace gsdiff
