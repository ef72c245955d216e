// Discrete ELBO terms at the shipped sizes (K = 256, T = 1000, float32, a network's logits): finite values and
// gradients, closed forms equal to the generic dense path, and the underflow floor never lowering the bound.
#include <gtest/gtest.h>

#include "core/dense_kernels.h"
#include "core/distributions.h"
#include "core/mixture_kernels.h"
#include "discrete_test_util.h"
#include "test_util.h"

using namespace gsdiff;
using namespace gsdiff::testing;
using J = nlohmann::json;
using torch::Tensor;

namespace {

// A float32 process as the configs build it (make_cat forces float64).
std::unique_ptr<CategoricalProcess> make_f32(const J& cfg) {
  auto p = make_process(cfg);
  return std::unique_ptr<CategoricalProcess>(dynamic_cast<CategoricalProcess*>(p.release()));
}

// x0 like Fashion-MNIST pixels (a third at 0, the rest spread over 0..255) [B, M], and x_t ~ q(x_t | x0).
std::pair<Tensor, Tensor> pixels(const CategoricalProcess& p, const Tensor& t, int64_t M, torch::Generator& gen) {
  const int64_t B = t.size(0);
  auto x0 = at::randint(0, p.num_categories(), {B, M}, gen, torch::TensorOptions().dtype(torch::kLong));
  x0 = torch::where(at::rand({B, M}, gen, torch::kFloat64) < 1.0 / 3, torch::zeros_like(x0), x0);
  return {x0, p.sample_xt(x0, t, gen)};
}

// Loss and gradient of a term against logits like an untrained network's (unit-variance noise), float32.
struct TermGrad {
  Tensor value, grad;
};
template <typename F>
TermGrad term_and_grad(const CategoricalProcess& p, const Tensor& xt, const Tensor& t, torch::Generator& gen, F term) {
  auto logits = at::randn({xt.size(0), xt.size(1), p.num_categories()}, gen, torch::kFloat32).requires_grad_(true);
  auto v = term(p.read_output(logits, xt, t));  // [B, M]
  v.sum().backward();
  return {v.detach(), logits.grad()};
}

}  // namespace

class DiscreteNumerics : public Seeded {};

// Every process of the issue at its shipped size: value and gradient finite at times across the grid.
// Before the fixes: absorbing T = 1000 gave NaN gradients on every unmasked position (0 * d log q at q = 0),
// discretized-gaussian K = 256 non-finite values at high t (p / q(x_t | x0) overflowing float32), blackout K = 256
// NaN / inf values from i = 314 on (binomials underflowing, then 0 / 0).
TEST_F(DiscreteNumerics, ShippedKernelsGiveFiniteStepTermsAndGradients) {
  for (const J& cfg : {J{{"name", "blackout"}, {"K", 256}, {"steps", 1000}},
                       J{{"name", "discretized-gaussian"}, {"K", 256}, {"steps", 1000}},
                       J{{"name", "absorbing"}, {"K", 27}, {"steps", 1000}}}) {
    auto p = make_f32(cfg);
    for (int64_t i : {2, 10, 314, 700, 973, 1000}) {
      auto t = tfull(4, double(i) / 1000), s = tfull(4, double(i - 1) / 1000);
      auto [x0, xt] = pixels(*p, t, 196, gen);
      auto r = term_and_grad(*p, xt, t, gen, [&](const Tensor& lp) { return p->step_kl(x0, xt, s, t, lp); });
      EXPECT_TRUE(torch::isfinite(r.value).all().item<bool>()) << cfg.dump() << " i=" << i;
      EXPECT_TRUE(torch::isfinite(r.grad).all().item<bool>()) << cfg.dump() << " i=" << i;
      EXPECT_GE(r.value.min().item<double>(), -1e-4) << cfg.dump() << " i=" << i;  // a KL; float32 rounding
    }
  }
}

// Continuous time: blackout's closed-form integrand and the generic CTMC path of the user kernels.
TEST_F(DiscreteNumerics, ContinuousTimeIntegrandsAndGradientsFinite) {
  J ring = {{"name", "rate-matrix"}, {"file", std::string(GSDIFF_SOURCE_DIR) + "/configs/kernels/letters27.json"}};
  for (const J& cfg : {J{{"name", "blackout"}, {"K", 256}}, ring}) {
    auto p = make_f32(cfg);
    for (double tv : {1e-4, 0.01, 0.3, 0.9, 0.999}) {
      auto t = tfull(4, tv);
      auto [x0, xt] = pixels(*p, t, 196, gen);
      auto r = term_and_grad(*p, xt, t, gen, [&](const Tensor& lp) { return p->elbo_integrand(x0, xt, t, lp); });
      EXPECT_TRUE(torch::isfinite(r.value).all().item<bool>()) << cfg.dump() << " t=" << tv;
      EXPECT_TRUE(torch::isfinite(r.grad).all().item<bool>()) << cfg.dump() << " t=" << tv;
      EXPECT_GE(r.value.min().item<double>(), -1e-3 * r.value.abs().max().item<double>()) << cfg.dump();  // Bregman >= 0
    }
  }
}

// Blackout's closed forms are the generic dense formulas (float64, small K where the dense path is exact).
TEST_F(DiscreteNumerics, BlackoutClosedFormsEqualTheGenericPath) {
  auto p = make_cat(J{{"name", "blackout"}, {"K", 9}, {"steps", 20}});
  auto& b = dynamic_cast<BlackoutProcess&>(*p);
  for (auto [sv, tv] : {std::pair{0.05, 0.1}, {0.45, 0.5}, {0.9, 0.95}}) {
    auto s = tfull(16, sv), t = tfull(16, tv);
    auto x0 = at::randint(0, 9, {16, 5}, gen, torch::TensorOptions().dtype(torch::kLong));
    auto xt = b.sample_xt(x0, t, gen);
    auto lp = b.read_output(at::randn({16, 5, 9}, gen, torch::kFloat64), xt, t);
    EXPECT_TRUE(torch::allclose(b.step_kl(x0, xt, s, t, lp), b.CategoricalProcess::step_kl(x0, xt, s, t, lp), 1e-9, 1e-12));
    EXPECT_TRUE(torch::allclose(b.elbo_integrand(x0, xt, t, lp), b.elbo_integrand_dense(x0, xt, t, lp), 1e-9, 1e-12));
    EXPECT_TRUE(torch::allclose(b.likelihood_of_xt(xt, t), torch::exp(b.log_likelihood_of_xt(xt, t)), 1e-12, 0));
  }
}

// At K = 256 in float32 the closed form matches float64 wherever the float64 value is not tiny, and where float32
// underflows (a reverse entry 0 under a denormal posterior entry) the floor makes the term larger, never smaller.
TEST_F(DiscreteNumerics, Float32BlackoutStepKlBoundsFloat64FromAbove) {
  auto p32 = make_f32(J{{"name", "blackout"}, {"K", 256}, {"steps", 1000}});
  auto p64 = make_cat(J{{"name", "blackout"}, {"K", 256}, {"steps", 1000}});
  auto t = tfull(2, 0.314), s = tfull(2, 0.313);
  auto [x0, xt] = pixels(*p64, t, 392, gen);
  auto logits = at::randn({2, 392, 256}, gen, torch::kFloat64);
  auto kl64 = p64->step_kl(x0, xt, s, t, p64->read_output(logits, xt, t));
  auto kl32 = p32->step_kl(x0, xt, s, t, p32->read_output(logits.to(torch::kFloat32), xt, t)).to(torch::kFloat64);
  // float32 relative error of logits and binomials (about 1e-6) over sums of 256 terms: 1e-4 relative, 1e-5 absolute
  // (the 1e-5 covers KLs of about 1e-9 whose float32 terms are all rounding).
  EXPECT_TRUE(torch::isfinite(kl32).all().item<bool>());
  EXPECT_TRUE((kl32 >= kl64 - (1e-4 * kl64.abs() + 1e-5)).all().item<bool>());
  EXPECT_LT(((kl32 - kl64).abs() / (kl64.abs() + 1e-5)).median().item<double>(), 1e-4);
}

// The floor in kl_to_mixture: where the reverse entry underflowed, log p(x0) + log posterior stands in; the KL can
// only grow. One position by hand: posterior (0.5, 0.5, 1e-44) against a reverse (0.6, 0.4, 0).
TEST(KlToMixture, UnderflowedReverseEntryIsFlooredByTheTrueX0Part) {
  auto log_post = torch::log(torch::tensor({0.5, 0.5, 1e-44}, torch::kFloat64)).unsqueeze(0);
  auto rev = torch::tensor({0.6, 0.4, 0.0}, torch::kFloat64).unsqueeze(0);
  auto logp_x0 = torch::log(torch::tensor({0.7}, torch::kFloat64));
  double got = kl_to_mixture(log_post, rev, logp_x0).item<double>();
  double want = 0.5 * std::log(0.5 / 0.6) + 0.5 * std::log(0.5 / 0.4) + 1e-44 * std::log(1.0 / 0.7);
  EXPECT_NEAR(got, want, 1e-15);
  // No underflow: the plain KL.
  auto rev2 = torch::tensor({0.55, 0.4, 0.05}, torch::kFloat64).unsqueeze(0);  // >= 0.7 x posterior everywhere
  double want2 = 0.5 * std::log(0.5 / 0.55) + 0.5 * std::log(0.5 / 0.4) + 1e-44 * std::log(1e-44 / 0.05);
  EXPECT_NEAR(kl_to_mixture(log_post, rev2, logp_x0).item<double>(), want2, 1e-15);
}

// Zero entries of the posterior and of the reverse step (absorbing: unmasked positions) give a zero gradient, not
// NaN; the same for rate_bregman's dropped entries.
TEST(DiscreteGradients, ZeroProbabilitiesGiveFiniteGradients) {
  auto q = torch::tensor({0.0, 1.0, 0.0}, torch::kFloat64).requires_grad_(true);
  auto p = torch::tensor({0.0, 1.0, 0.0}, torch::kFloat64);
  categorical_kl_probs(p, q).backward();
  EXPECT_TRUE(torch::isfinite(q.grad()).all().item<bool>());
  auto rth = torch::tensor({0.0, 2.0, 0.0}, torch::kFloat64).requires_grad_(true);
  auto v = rate_bregman(torch::tensor({0.0, 1.0, 0.5}, torch::kFloat64), torch::tensor({0.0, 1.0, 0.0}, torch::kFloat64), rth);
  v.backward();
  EXPECT_TRUE(torch::isfinite(rth.grad()).all().item<bool>());
  EXPECT_NEAR(v.item<double>(), (2.0 - 1.0 + std::log(1.0 / 2.0)) + 0.5 * 0.0, 1e-15);  // y = 2: r_th - r_q = 0
}
