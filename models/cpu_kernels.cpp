// Hand-written CPU kernels (AVX2 + FMA) of the U-Net's single-node ResBlock: silu(GroupNorm(x)), dropout.
#include "models/cpu_kernels.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace gsdiff {
namespace {
using torch::Tensor;

#define GSDIFF_AVX2 __attribute__((target("avx2,fma")))

std::atomic<bool> g_cpu_kernels{true};

bool cpu_has_avx2_fma() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok && g_cpu_kernels.load(std::memory_order_relaxed);
}

// exp(x), 8 lanes: Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, and the degree-5 minimax polynomial
// of Cephes' expf for e^r (about 1 ulp); x is clamped to [-87.34, 88.38] (2^-126 .. +inf), NaN stays NaN
// through the callers' later products.
GSDIFF_AVX2 inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3365447504f)), _mm256_set1_ps(88.3762626647949f));
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));  // e^r
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));  // e^r 2^n
}

GSDIFF_AVX2 inline __m256 sigmoid8(__m256 y) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), y))));
}

GSDIFF_AVX2 inline double hsum8(__m256 v) {
  alignas(32) float a[8];
  _mm256_store_ps(a, v);
  double s = 0;
  for (float f : a) s += f;
  return s;
}

inline float sigmoid1(float y) { return 1.0f / (1.0f + std::exp(-y)); }

// sum of x[0..n) and of (x - m)^2, each in float lanes flushed to double every 1024 elements.
GSDIFF_AVX2 double row_sum(const float* x, int64_t n, float m, bool squares) {
  double total = 0;
  const __m256 mv = _mm256_set1_ps(m);
  int64_t i = 0;
  while (i + 8 <= n) {
    __m256 acc = _mm256_setzero_ps();
    const int64_t end = std::min(n - n % 8, i + 1024);
    for (; i < end; i += 8) {
      __m256 v = _mm256_loadu_ps(x + i);
      if (squares) {
        v = _mm256_sub_ps(v, mv);
        acc = _mm256_fmadd_ps(v, v, acc);
      } else {
        acc = _mm256_add_ps(acc, v);
      }
    }
    total += hsum8(acc);
  }
  for (; i < n; ++i) total += squares ? double(x[i] - m) * double(x[i] - m) : double(x[i]);
  return total;
}

// One (sample, group) row: D channels of HW positions, contiguous.
GSDIFF_AVX2 void forward_row(const float* x, float* out, int64_t D, int64_t HW, const float* gamma,
                             const float* beta, double eps, float* mean_out, float* rstd_out) {
  const int64_t n = D * HW;
  const float mean = float(row_sum(x, n, 0.f, false) / double(n));
  const double var = row_sum(x, n, mean, true) / double(n);
  const float rstd = float(1.0 / std::sqrt(std::max(var, 0.0) + eps));
  *mean_out = mean;
  *rstd_out = rstd;
  for (int64_t c = 0; c < D; ++c) {
    const float scale = rstd * gamma[c], shift = beta[c] - mean * scale;
    const float* xc = x + c * HW;
    float* oc = out + c * HW;
    const __m256 sv = _mm256_set1_ps(scale), bv = _mm256_set1_ps(shift);
    int64_t i = 0;
    for (; i + 8 <= HW; i += 8) {
      const __m256 y = _mm256_fmadd_ps(_mm256_loadu_ps(xc + i), sv, bv);
      _mm256_storeu_ps(oc + i, _mm256_mul_ps(y, sigmoid8(y)));
    }
    for (; i < HW; ++i) {
      const float y = std::fma(xc[i], scale, shift);
      oc[i] = y * sigmoid1(y);
    }
  }
}

// One (sample, group) row of the backward: dy = dout silu'(y) into dx (when given), the per-channel sums
// ds_c = sum dy x and db_c = sum dy, then dx = gamma_c rstd dy + c2 x + c3 in place.
GSDIFF_AVX2 void backward_row(const float* dout, const float* x, float* dx, int64_t D, int64_t HW,
                              const float* gamma, const float* beta, float mean, float rstd, double* ds,
                              double* db) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t c = 0; c < D; ++c) {
    const float scale = rstd * gamma[c], shift = beta[c] - mean * scale;
    const float* xc = x + c * HW;
    const float* gc = dout + c * HW;
    float* dc = dx ? dx + c * HW : nullptr;
    const __m256 sv = _mm256_set1_ps(scale), bv = _mm256_set1_ps(shift);
    __m256 acc_s = _mm256_setzero_ps(), acc_b = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= HW; i += 8) {
      const __m256 xv = _mm256_loadu_ps(xc + i);
      const __m256 y = _mm256_fmadd_ps(xv, sv, bv);
      const __m256 s = sigmoid8(y);
      // silu'(y) = s (1 + y (1 - s))
      const __m256 dy = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(gc + i), s),
                                      _mm256_fmadd_ps(y, _mm256_sub_ps(one, s), one));
      if (dc) _mm256_storeu_ps(dc + i, dy);
      acc_s = _mm256_fmadd_ps(dy, xv, acc_s);
      acc_b = _mm256_add_ps(acc_b, dy);
    }
    double s_sum = hsum8(acc_s), b_sum = hsum8(acc_b);
    for (; i < HW; ++i) {
      const float y = std::fma(xc[i], scale, shift), s = sigmoid1(y);
      const float dy = gc[i] * s * (1.0f + y * (1.0f - s));
      if (dc) dc[i] = dy;
      s_sum += double(dy) * xc[i];
      b_sum += dy;
    }
    ds[c] = s_sum;
    db[c] = b_sum;
  }
  if (!dx) return;
  double ds_g = 0, db_g = 0;
  for (int64_t c = 0; c < D; ++c) {
    ds_g += ds[c] * gamma[c];
    db_g += db[c] * gamma[c];
  }
  const double inv = 1.0 / double(D * HW), r = rstd;
  const double c2d = (db_g * mean - ds_g) * r * r * r * inv;
  const float c2 = float(c2d), c3 = float(-c2d * mean - db_g * r * inv);
  const __m256 c2v = _mm256_set1_ps(c2), c3v = _mm256_set1_ps(c3);
  for (int64_t c = 0; c < D; ++c) {
    const float a = gamma[c] * rstd;
    const __m256 av = _mm256_set1_ps(a);
    const float* xc = x + c * HW;
    float* dc = dx + c * HW;
    int64_t i = 0;
    for (; i + 8 <= HW; i += 8)
      _mm256_storeu_ps(dc + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(dc + i),
                                               _mm256_fmadd_ps(c2v, _mm256_loadu_ps(xc + i), c3v)));
    for (; i < HW; ++i) dc[i] = a * dc[i] + (c2 * xc[i] + c3);
  }
}

void check_groups(const Tensor& x, int64_t groups) {
  if (groups < 1 || x.size(1) % groups != 0)
    throw std::invalid_argument("group_norm_silu: groups (" + std::to_string(groups) + ") must divide the channels (" +
                                std::to_string(x.size(1)) + ")");
}

// Dropout mask: lowbias32 (a 32-bit xorshift-multiply mixer), twice, over the element index and the seed.
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  return x ^ (x >> 16);
}
inline uint32_t mask_hash(uint64_t i, uint64_t seed) {
  return mix32(mix32(uint32_t(i) ^ uint32_t(seed)) + uint32_t(seed >> 32) + uint32_t(i >> 32) * 0x9E3779B9U);
}
GSDIFF_AVX2 inline __m256i mix32x8(__m256i x) {
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb352d));
  x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
  x = _mm256_mullo_epi32(x, _mm256_set1_epi32(int32_t(0x846ca68bU)));
  return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}

// Elements [begin, end) (begin a multiple of 8): out = keep ? a * scale : 0, keep bits into bits[begin / 8 ..].
GSDIFF_AVX2 void dropout_range(const float* a, float* out, uint8_t* bits, int64_t begin, int64_t end, uint32_t thr,
                               float scale, uint64_t seed) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), thr_v = _mm256_set1_epi32(int32_t(thr));
  const __m256 sv = _mm256_set1_ps(scale);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    // one (i >> 32) per 8-aligned block: the 8 indices share their high word
    const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(int32_t(uint32_t(i))), lanes);
    __m256i h = mix32x8(_mm256_xor_si256(idx, _mm256_set1_epi32(int32_t(uint32_t(seed)))));
    h = _mm256_add_epi32(h, _mm256_set1_epi32(int32_t(uint32_t(seed >> 32) + uint32_t(uint64_t(i) >> 32) * 0x9E3779B9U)));
    h = mix32x8(h);
    const __m256i keep = _mm256_cmpgt_epi32(thr_v, _mm256_srli_epi32(h, 8));  // (h >> 8) < thr
    const __m256 kf = _mm256_castsi256_ps(keep);
    _mm256_storeu_ps(out + i, _mm256_and_ps(kf, _mm256_mul_ps(_mm256_loadu_ps(a + i), sv)));
    bits[i / 8] = uint8_t(_mm256_movemask_ps(kf));
  }
  if (i < end) {
    uint8_t b = 0;
    for (int64_t j = i; j < end; ++j) {
      const bool k = (mask_hash(uint64_t(j), seed) >> 8) < thr;
      out[j] = k ? a[j] * scale : 0.0f;
      b |= uint8_t(k) << (j - i);
    }
    bits[i / 8] = b;
  }
}

GSDIFF_AVX2 void dropout_backward_range(const float* g, float* out, const uint8_t* bits, int64_t begin, int64_t end,
                                        float scale) {
  const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 sv = _mm256_set1_ps(scale);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256i b = _mm256_and_si256(_mm256_set1_epi32(bits[i / 8]), lane_bit);
    const __m256 kf = _mm256_castsi256_ps(_mm256_cmpeq_epi32(b, lane_bit));
    _mm256_storeu_ps(out + i, _mm256_and_ps(kf, _mm256_mul_ps(_mm256_loadu_ps(g + i), sv)));
  }
  for (; i < end; ++i) out[i] = (bits[i / 8] >> (i % 8)) & 1 ? g[i] * scale : 0.0f;
}

#undef GSDIFF_AVX2
}  // namespace

void set_cpu_kernels(bool on) { g_cpu_kernels.store(on, std::memory_order_relaxed); }
bool cpu_kernels_enabled() { return g_cpu_kernels.load(std::memory_order_relaxed); }

bool group_norm_silu_fusable(const Tensor& x, const Tensor& gamma) {
  return cpu_has_avx2_fma() && x.is_cpu() && x.scalar_type() == at::kFloat && x.dim() >= 2 && x.numel() > 0 &&
         x.is_contiguous() && gamma.defined() && gamma.scalar_type() == at::kFloat;
}

std::tuple<Tensor, Tensor, Tensor> group_norm_silu_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                                           int64_t groups, double eps) {
  TORCH_CHECK(group_norm_silu_fusable(x, gamma), "group_norm_silu_forward: needs a contiguous float32 CPU tensor");
  check_groups(x, groups);
  const int64_t N = x.size(0), C = x.size(1), HW = x.numel() / (N * C), D = C / groups;
  auto out = at::empty_like(x);
  auto mean = at::empty({N, groups}, x.options()), rstd = at::empty({N, groups}, x.options());
  const auto g = gamma.contiguous(), b = beta.contiguous();
  const float *xp = x.data_ptr<float>(), *gp = g.data_ptr<float>(), *bp = b.data_ptr<float>();
  float *op = out.data_ptr<float>(), *mp = mean.data_ptr<float>(), *rp = rstd.data_ptr<float>();
  at::parallel_for(0, N * groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t c0 = (row % groups) * D;
      forward_row(xp + row * D * HW, op + row * D * HW, D, HW, gp + c0, bp + c0, eps, mp + row, rp + row);
    }
  });
  return {out, mean, rstd};
}

std::tuple<Tensor, Tensor, Tensor> group_norm_silu_backward(const Tensor& dout_, const Tensor& x, const Tensor& mean,
                                                            const Tensor& rstd, const Tensor& gamma,
                                                            const Tensor& beta, int64_t groups,
                                                            std::array<bool, 3> mask) {
  TORCH_CHECK(group_norm_silu_fusable(x, gamma), "group_norm_silu_backward: needs a contiguous float32 CPU tensor");
  check_groups(x, groups);
  const auto dout = dout_.contiguous();
  const int64_t N = x.size(0), C = x.size(1), HW = x.numel() / (N * C), D = C / groups;
  Tensor dx = mask[0] ? at::empty_like(x) : Tensor();
  std::vector<double> ds(N * C), db(N * C);
  const auto g = gamma.contiguous(), b = beta.contiguous(), m = mean.contiguous(), r = rstd.contiguous();
  const float *xp = x.data_ptr<float>(), *dp = dout.data_ptr<float>(), *gp = g.data_ptr<float>(),
              *bp = b.data_ptr<float>(), *mp = m.data_ptr<float>(), *rp = r.data_ptr<float>();
  float* dxp = mask[0] ? dx.data_ptr<float>() : nullptr;
  at::parallel_for(0, N * groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t c0 = (row % groups) * D, off = row * D * HW;
      backward_row(dp + off, xp + off, dxp ? dxp + off : nullptr, D, HW, gp + c0, bp + c0, mp[row], rp[row],
                   ds.data() + row * D, db.data() + row * D);
    }
  });
  Tensor dgamma, dbeta;
  if (mask[1] || mask[2]) {
    std::vector<double> sg(C, 0.0), sb(C, 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t row = n * groups + c / D;
        sg[c] += (ds[n * C + c] - db[n * C + c] * mp[row]) * rp[row];
        sb[c] += db[n * C + c];
      }
    auto to_tensor = [&](const std::vector<double>& v) {
      auto t = at::empty({C}, gamma.options());
      std::copy(v.begin(), v.end(), t.data_ptr<float>());  // double -> float
      return t;
    };
    if (mask[1]) dgamma = to_tensor(sg);
    if (mask[2]) dbeta = to_tensor(sb);
  }
  return {dx, dgamma, dbeta};
}

bool dropout_fusable(const Tensor& a) {
  return cpu_has_avx2_fma() && a.is_cpu() && a.scalar_type() == at::kFloat && a.is_contiguous();
}

uint64_t draw_dropout_seed() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

std::tuple<Tensor, Tensor> dropout_forward(const Tensor& a, double p, uint64_t seed) {
  TORCH_CHECK(dropout_fusable(a), "dropout_forward: needs a contiguous float32 CPU tensor");
  TORCH_CHECK(p >= 0 && p < 1, "dropout_forward: p must be in [0, 1), got ", p);
  const int64_t n = a.numel();
  auto out = at::empty_like(a);
  auto bits = at::empty({(n + 7) / 8}, a.options().dtype(at::kByte));
  const uint32_t thr = uint32_t(std::lround((1.0 - p) * double(1 << 24)));
  const float scale = float(1.0 / (1.0 - p));
  const float* ap = a.data_ptr<float>();
  float* op = out.data_ptr<float>();
  uint8_t* bp = bits.data_ptr<uint8_t>();
  at::parallel_for(0, (n + 7) / 8, 4096, [&](int64_t b0, int64_t b1) {
    dropout_range(ap, op, bp, b0 * 8, std::min(n, b1 * 8), thr, scale, seed);
  });
  return {out, bits};
}

Tensor dropout_backward(const Tensor& grad_, const Tensor& keep, double p) {
  const auto grad = grad_.contiguous();
  TORCH_CHECK(dropout_fusable(grad) && keep.scalar_type() == at::kByte && keep.numel() == (grad.numel() + 7) / 8,
              "dropout_backward: needs a float32 CPU gradient and its keep bits");
  const int64_t n = grad.numel();
  auto out = at::empty_like(grad);
  const float scale = float(1.0 / (1.0 - p));
  const float* gp = grad.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const uint8_t* bp = keep.data_ptr<uint8_t>();
  at::parallel_for(0, (n + 7) / 8, 4096, [&](int64_t b0, int64_t b1) {
    dropout_backward_range(gp, op, bp, b0 * 8, std::min(n, b1 * 8), scale);
  });
  return out;
}

}  // namespace gsdiff
