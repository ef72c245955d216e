// Temperature / top-p on p(x0 | x_t) (filtered_denoiser, what `gsdiff sample --temperature --top-p` wraps) and the
// float64 Gumbel-max draw, against closed forms and an exact enumeration of float32 Gumbel noise.
#include <gtest/gtest.h>

#include <torch/special.h>

#include "core/categorical.h"
#include "core/registry.h"
#include "sample/sampler.h"
#include "sample/token_filter.h"
#include "test_util.h"

namespace gsdiff {
namespace token_filter_test {

constexpr int64_t kL = 2, kK = 5;

std::unique_ptr<CategoricalProcess> tf_make(const std::string& name, const std::string& param = "bayes") {
  register_builtins();
  auto p = make_process({{"name", name}, {"K", kK}, {"steps", 0}, {"dtype", "float64"}, {"parameterization", param}});
  return std::unique_ptr<CategoricalProcess>(dynamic_cast<CategoricalProcess*>(p.release()));
}

// Per-position data law [L, K] with distinct probabilities (no ties at a nucleus edge).
torch::Tensor tf_law() {
  return torch::tensor({{0.42, 0.27, 0.16, 0.10, 0.05}, {0.05, 0.08, 0.5, 0.22, 0.15}}, torch::kFloat64);
}

// The exact denoiser of independent positions under the Bayes reading: logits log px0 whatever x_t.
DenoiseFn tf_denoiser(const torch::Tensor& px0) {
  return [px0](const torch::Tensor& xt, const torch::Tensor&) {
    return torch::log(px0).unsqueeze(0).expand({xt.size(0), px0.size(0), px0.size(1)}).contiguous();
  };
}

// Chi-square p-value of counts [L, K] against probabilities [L, K] (cells of zero probability must be empty and
// are left out; dof = nonzero cells - L).
double tf_pvalue(const torch::Tensor& counts, const torch::Tensor& prob, int64_t n) {
  auto pos = prob > 0;
  auto e = prob * double(n);
  const double chi2 = torch::where(pos, (counts - e).square() / torch::where(pos, e, torch::ones_like(e)), torch::zeros_like(e)).sum().item<double>();
  const double dof = double(pos.sum().item<int64_t>() - prob.size(0));
  return torch::special::gammaincc(torch::tensor(dof / 2.0), torch::tensor(chi2 / 2.0)).item<double>();
}

torch::Tensor tf_counts(const torch::Tensor& x) {  // [N, L] -> [L, K]
  return torch::one_hot(x, kK).to(torch::kFloat64).sum(0);
}

// A one-step chain (grid {1, 0}) starts from the prior, where q(x_1 | x0) is the same for every x0 (absorbing: the
// mask; uniform: alpha_1 = 0), so its final exact step draws x0 from the filtered p(x0 | x_1) = filter(px0). With
// temperature T that is px0^(1/T) / Z (closed form). Chi-square over 2 x 4 dof, p > 1e-4 (a false alarm 1 in 10^4).
TEST(TokenFilter, TemperatureGivesTheTemperedMarginalOfAOneStepChain) {
  const int64_t N = 40000;
  for (const std::string name : {"absorbing", "uniform"}) {
    auto p = tf_make(name);
    for (double T : {0.5, 2.0}) {
      for (const std::string sampler : {"ancestral", "tweedie"}) {
        auto gen = testing::seeded(11);
        auto f = filtered_denoiser(*p, tf_denoiser(tf_law()), TokenFilterOptions().temperature(T));
        auto x = make_sampler(sampler)(*p, f, {1.0, 0.0}, {N, kL}, gen, {});
        auto tempered = torch::pow(tf_law(), 1.0 / T);
        tempered = tempered / tempered.sum(1, true);
        EXPECT_GT(tf_pvalue(tf_counts(x), tempered, N), 1e-4) << name << " " << sampler << " T=" << T;
        // and not the untempered law (the test can tell them apart at this N)
        EXPECT_LT(tf_pvalue(tf_counts(x), tf_law(), N), 1e-6) << name << " " << sampler << " T=" << T;
      }
    }
  }
}

// top-p keeps exactly the nucleus: the most probable x0 in descending order until their mass reaches p (computed
// here by a loop, independently of the sort / cumsum code): no draw outside it over N draws, and inside it the
// renormalised law (chi-square, p > 1e-4).
TEST(TokenFilter, TopPKeepsExactlyTheNucleusRenormalised) {
  const int64_t N = 40000;
  auto p = tf_make("absorbing");
  for (double top : {0.5, 0.7, 0.9}) {
    auto law = tf_law();
    auto nucleus = torch::zeros_like(law);
    for (int64_t l = 0; l < kL; ++l) {
      std::vector<std::pair<double, int64_t>> v;
      for (int64_t k = 0; k < kK; ++k) v.push_back({law[l][k].item<double>(), k});
      std::sort(v.rbegin(), v.rend());
      double mass = 0;
      for (auto [pk, k] : v) {
        if (mass >= top) break;
        nucleus[l][k] = pk;
        mass += pk;
      }
    }
    nucleus = nucleus / nucleus.sum(1, true);
    auto gen = testing::seeded(5);
    auto f = filtered_denoiser(*p, tf_denoiser(law), TokenFilterOptions().top_p(top));
    auto x = make_sampler("ancestral")(*p, f, {1.0, 0.0}, {N, kL}, gen, {});
    auto c = tf_counts(x);
    EXPECT_EQ(torch::where(nucleus == 0, c, torch::zeros_like(c)).sum().item<double>(), 0.0) << "draws outside the nucleus, p=" << top;
    EXPECT_GT(tf_pvalue(c, nucleus, N), 1e-4) << "top_p=" << top;
  }
}

// The wrapper's output read back by the process is the filtered law (a round trip through read_output), for the
// Bayes and the masked readings, at an intermediate t where q(x_t | x0) differs across x0 (uniform) or rules x0 out
// (absorbing, unmasked tokens): float64 rounding only (1e-12).
TEST(TokenFilter, ReadOutputOfTheWrappedOutputIsTheFilteredLaw) {
  auto gen = testing::seeded(2);
  for (const std::string name : {"uniform", "absorbing"}) {
    for (const std::string param : {"bayes", "masked"}) {
      auto p = tf_make(name, param);
      auto xt = torch::randint(0, p->num_states(), {64, kL}, gen, torch::kLong);
      auto t = torch::full({64}, 0.37, torch::kFloat64);
      auto logits = torch::randn({64, kL, kK}, gen, torch::kFloat64);
      DenoiseFn raw = [logits](const torch::Tensor&, const torch::Tensor&) { return logits; };
      const auto o = TokenFilterOptions().temperature(0.6).top_p(0.8);
      auto want = filter_logp(p->read_output(logits, xt, t), o);
      auto got = p->read_output(filtered_denoiser(*p, raw, o)(xt, t), xt, t);
      auto fin = torch::isfinite(want);
      EXPECT_TRUE(torch::equal(fin, torch::isfinite(got))) << name << "/" << param << ": support differs";
      EXPECT_LT((torch::where(fin, want - got, torch::zeros_like(want))).abs().max().item<double>(), 1e-12) << name << "/" << param;
    }
  }
}

// sample_gumbel_max follows its law, rare cells included: K = 6 probabilities from 0.5 to 1e-4, N = 10^6 draws,
// chi-square over 5 dof with p > 1e-4 (the 1e-4 cell expects 100 draws).
TEST(GumbelMax, Float64DrawsFollowTheLaw) {
  auto law = torch::tensor({0.5, 0.3, 0.15, 0.0399, 0.01, 0.0001}, torch::kFloat64);
  const int64_t N = 1000000;
  auto gen = testing::seeded(8);
  auto x = sample_gumbel_max(torch::log(law).unsqueeze(0).expand({N, 6}), gen);
  auto c = torch::bincount(x, {}, 6).to(torch::kFloat64).unsqueeze(0);
  EXPECT_GT(tf_pvalue(c, law.unsqueeze(0), N), 1e-4) << c;
}

// sample_categorical_gumbel (what the discrete samplers' reverse steps draw with) takes unnormalised probabilities:
// zero cells are never drawn in 200000 draws, the others follow the normalised law (chi-square over 2 dof, p > 1e-4).
TEST(GumbelMax, FromProbabilitiesZerosAreNeverDrawnAndTheRestFollowTheLaw) {
  auto w = torch::tensor({1.5, 0.0, 0.9, 0.6, 0.0}, torch::kFloat32);  // float32 input, as a float32 process gives
  const int64_t N = 200000;
  auto gen = testing::seeded(12);
  auto x = sample_categorical_gumbel(w.unsqueeze(0).expand({N, 5}), gen);
  auto c = torch::bincount(x, {}, 5).to(torch::kFloat64).unsqueeze(0);
  EXPECT_EQ(c[0][1].item<double>() + c[0][4].item<double>(), 0.0);
  EXPECT_GT(tf_pvalue(c, (w.to(torch::kFloat64) / w.sum().item<double>()).unsqueeze(0), N), 1e-4) << c;
}

// Why the noise is float64: float32 Gumbel-max truncates rare tokens. For the two-token law (1 - p, p), the exact
// law of a float32 Gumbel-max draw is enumerated over all 2^24 - 1 float32 uniforms u = k 2^-24 of each token's
// noise g = -log(-log u) (computed in float32): P32(rare) = sum_i #{g_j < g_i - log((1 - p)/p)} / n^2. Its noise
// spans only [-2.81, 16.64], so a token of p = 1e-9 (log-odds -20.7) is never drawn, and p = 1e-8 keeps under 2% of
// its mass; float64's draw (tested above, and whose noise cap is 36.7) loses none of it.
TEST(GumbelMax, Float32NoiseTruncatesRareTokensExactly) {
  const int64_t n = (int64_t(1) << 24) - 1;
  auto u = (torch::arange(1, n + 1, torch::kFloat64) * std::ldexp(1.0, -24)).to(torch::kFloat32);
  auto g = (-torch::log(-torch::log(u))).to(torch::kFloat64);  // float32 noise, exactly its values [n]
  auto sorted = std::get<0>(g.sort());
  EXPECT_NEAR(sorted[-1].item<double>(), 16.6355, 1e-3);
  EXPECT_NEAR(sorted[0].item<double>(), -2.8115, 1e-3);
  auto p32 = [&](double p) {
    auto below = torch::searchsorted(sorted, sorted - std::log((1 - p) / p));  // #{g_j < g_i - delta}
    return below.to(torch::kFloat64).sum().item<double>() / double(n) / double(n);
  };
  EXPECT_EQ(p32(1e-9), 0.0) << "a 1e-9 token is out of float32 Gumbel-max's reach";
  EXPECT_LT(p32(1e-8), 0.02 * 1e-8);
  EXPECT_LT(p32(5e-8), 0.6 * 5e-8);
  EXPECT_NEAR(p32(1e-3), 1e-3, 1e-3 * 0.01);  // common tokens are fine (1%)
  // float64's noise: the largest value of -log(-log u) for u < 1 in double, so log-odds down to -36 stay reachable.
  const double u64 = std::nextafter(1.0, 0.0);
  EXPECT_GT(-std::log(-std::log(u64)), 36.0);
}

}  // namespace token_filter_test
}  // namespace gsdiff
