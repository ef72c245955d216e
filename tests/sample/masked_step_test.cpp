// ReMDM remasking and MaskGIT confidence order on the absorbing process (sample/masked_step.h, reached through
// make_sampler("ancestral" / "mdlm-cached") with method options, as `gsdiff sample --remask / --unmask` does).
#include <gtest/gtest.h>

#include <torch/special.h>

#include "core/mixture_kernels.h"
#include "core/registry.h"
#include "sample/masked_step.h"
#include "sample/sampler.h"
#include "test_util.h"

namespace gsdiff {
namespace masked_step_test {

constexpr int64_t kL = 3, kK = 3;

std::unique_ptr<AbsorbingProcess> ms_make(const std::string& schedule = "linear") {
  register_builtins();
  auto p = make_process({{"name", "absorbing"}, {"K", kK}, {"steps", 0}, {"dtype", "float64"}, {"schedule", schedule}});
  return std::unique_ptr<AbsorbingProcess>(dynamic_cast<AbsorbingProcess*>(p.release()));
}

// An arbitrary joint law over the 27 cells of (x0_0, x0_1, x0_2), far from a product.
torch::Tensor ms_joint() {
  auto w = torch::tensor({5., 1., 1., 2., 9., 1., 1., 1., 6., 1., 3., 8., 2., 1., 1., 7., 2., 1.,
                          1., 6., 2., 9., 1., 1., 1., 4., 12.}, torch::kFloat64);
  return w / w.sum();  // index 9 x0_0 + 3 x0_1 + x0_2
}

torch::Tensor ms_cells() {  // one-hot values of the 27 cells [27, L, K]
  auto j = torch::arange(27, torch::kLong);
  auto v = torch::stack({j.div(9, "floor"), j.div(3, "floor").remainder(3), j.remainder(3)}, 1);
  return torch::one_hot(v, kK).to(torch::kFloat64);
}

// The exact denoiser of a joint law: p(x0_l | x_t) from the cells consistent with the unmasked tokens (for absorbing
// q(x_t | x0) is 1 on the mask and [x_t = x0] on a token, whatever t > 0), read through the Bayes parameterisation.
DenoiseFn ms_joint_denoiser(const AbsorbingProcess& p, torch::Tensor joint) {
  return [&p, joint](const torch::Tensor& xt, const torch::Tensor& t) {
    auto lik = p.likelihood_of_xt(xt, t.to(torch::kFloat64).clamp(1e-9, 1.0 - 1e-9)).to(torch::kFloat64);  // [B, L, K]
    auto lj = torch::einsum("blk,jlk->bj", {torch::log(lik.clamp_min(1e-300)), ms_cells()}) + torch::log(joint);
    auto marg = torch::einsum("bj,jlk->blk", {torch::softmax(lj, 1), ms_cells()});
    return torch::where(lik > 0, torch::log(marg.clamp_min(1e-300)) - torch::log(lik.clamp_min(1e-300)), torch::zeros_like(lik));
  };
}

// A product law: independent positions with these marginals (the product of ms_joint's marginals).
torch::Tensor ms_product() {
  auto J = ms_joint().reshape({kK, kK, kK});
  auto m0 = J.sum(at::IntArrayRef{1, 2}), m1 = J.sum(at::IntArrayRef{0, 2}), m2 = J.sum(at::IntArrayRef{0, 1});
  return torch::einsum("a,b,c->abc", {m0, m1, m2}).reshape({-1});
}

// The exact denoiser of ms_product(): each position's marginal of ms_joint(), whatever x_t and t (independent positions).
DenoiseFn ms_product_denoiser() {
  auto J = ms_joint().reshape({kK, kK, kK});
  auto px0 = torch::stack({J.sum(at::IntArrayRef{1, 2}), J.sum(at::IntArrayRef{0, 2}), J.sum(at::IntArrayRef{0, 1})});  // [L, K]
  return [px0](const torch::Tensor& xt, const torch::Tensor&) {
    return torch::log(px0).unsqueeze(0).expand({xt.size(0), kL, kK}).contiguous();
  };
}

torch::Tensor ms_cell_counts(const torch::Tensor& x) {
  return torch::bincount(x.select(1, 0) * 9 + x.select(1, 1) * 3 + x.select(1, 2), {}, 27).to(torch::kFloat64);
}

double ms_pvalue(const torch::Tensor& counts, const torch::Tensor& law, int64_t n) {
  auto e = law * double(n);
  const double chi2 = ((counts - e).square() / e).sum().item<double>();
  return torch::special::gammaincc(torch::tensor(13.0), torch::tensor(chi2 / 2)).item<double>();  // 26 dof
}

// Records, after every step of a chain, the masked fraction per position [L] and the remasking events (a position
// decoded at t and masked at s), so a test can check the marginals along the chain and that remasking ran.
struct MarginalRecorder {
  int64_t events = 0;
  std::vector<int64_t> step_events;  // remasking events of each step
  torch::Tensor prev;
  std::vector<torch::Tensor> masked_frac;  // [L] per state, the prior first
  StepHook hook() {
    return [this](const torch::Tensor& x, const StepInfo&, torch::Generator&) {
      if (prev.defined()) step_events.push_back(((prev != kK) & (x == kK)).sum().item<int64_t>());
      if (prev.defined()) events += step_events.back();
      masked_frac.push_back((x == kK).to(torch::kFloat64).mean(0));
      prev = x.clone();
      return x;
    };
  }
};

// ReMDM (Wang et al. 2025, Sec. 3): for every sigma_t in [0, sigma_max] the remasking posterior keeps the forward
// marginal q(z_s | x0) = Cat(alpha_s x0 + (1 - alpha_s) m), so with an exact x0 predictor every state of the chain has
// the forward process's law. For independent positions the exact p(x0 | z_t) factorises and this holds exactly at
// any step count (here 10 steps, where remasking is heavy). Checked after every step: the masked fraction of each
// position is 1 - alpha_s within 5 binomial standard errors of N draws (a posterior without ReMDM's compensating
// unmask probability leaves too many masks and fails this); the final law is the data law (chi-square over 27
// cells, p > 1e-4, a false alarm 1 in 10^4); and remasking happened (thousands of events). For cap and rescale,
// through ancestral and mdlm-cached.
TEST(ReMdm, CapAndRescaleKeepTheForwardMarginalsWithAnExactDenoiser) {
  auto p = ms_make();
  const int64_t N = 20000;
  auto law = ms_product();
  auto f = ms_product_denoiser();
  auto grid = time_grid(*p, 10);
  for (const auto& o : {MaskedOptions().remask("cap").eta(0.5), MaskedOptions().remask("rescale").eta(0.8),
                        MaskedOptions().remask("cap").eta(1.0)}) {
    for (const std::string sampler : {"ancestral", "mdlm-cached"}) {
      SamplerOptions so;
      so.method = to_json(o);
      so.denoiser_uses_t = false;
      auto gen = testing::seeded(4);
      MarginalRecorder rec;
      auto x = make_sampler(sampler, so)(*p, f, grid, {N, kL}, gen, {}, rec.hook());
      ASSERT_TRUE(((x >= 0) & (x < kK)).all().item<bool>()) << "masks left";
      ASSERT_EQ(rec.masked_frac.size(), grid.size());
      for (size_t k = 1; k + 1 < grid.size(); ++k) {
        const double q = 1.0 - p->schedule().alpha(torch::tensor({grid[k]}, torch::kFloat64)).item<double>();
        const double tol = 5.0 * std::sqrt(q * (1 - q) / double(N));
        EXPECT_LT((rec.masked_frac[k] - q).abs().max().item<double>(), tol)
            << sampler << " " << o.remask() << " eta " << o.eta() << " at s = " << grid[k];
      }
      EXPECT_GT(rec.events, 1000) << o.remask() << ": no remasking happened";
      EXPECT_GT(ms_pvalue(ms_cell_counts(x), law, N), 1e-4) << sampler << " " << o.remask() << " eta " << o.eta();
    }
  }
}

// ReMDM-loop (Wang et al. 2025, Sec. 4.1) on a 20-step grid {1, 0.95, ..., 0} with t_on 0.6, t_off 0.2: the 8 steps
// inside [0.2, 0.6] hold alpha and remask, the others are MDLM's steps. With the exact denoiser of independent
// positions each state has the forward law at its warped time, so the masked fraction of every position after each
// step is 1 - alpha, within 5 binomial standard errors of N draws, where alpha is the paper's piecewise form:
//   (a) alpha_on unset, cosine schedule: alpha(t) before the loop, alpha(t_on) inside it, alpha(t t_on / t_off) after;
//   (b) alpha_on 0.9, linear schedule (alpha = 1 - t): 0.9 (1 - t) / (1 - t_on) before, 0.9 inside, 1 - 0.1 t / t_off
//       after.
// A loop that let alpha move inside [t_off, t_on], or skipped the warp, misses these by far more than the tolerance.
// Remasking happens in every loop step (hundreds of events each) and in no other step; the final law is the data
// law (chi-square over 27 cells, p > 1e-4). Through ancestral and mdlm-cached, cap and rescale.
TEST(ReMdm, LoopHoldsAlphaInsideTheLoopAndRemasksOnlyThere) {
  const int64_t N = 20000;
  const double t_on = 0.6, t_off = 0.2;
  std::vector<double> grid;
  for (int k = 20; k >= 0; --k) grid.push_back(k / 20.0);
  for (const bool with_alpha_on : {false, true}) {
    auto p = ms_make(with_alpha_on ? "linear" : "cosine");
    auto alpha = [&](double t) { return p->schedule().alpha(torch::tensor({t}, torch::kFloat64)).item<double>(); };
    auto expected_alpha = [&](double t) {
      if (with_alpha_on) return t >= t_on ? 0.9 * (1 - t) / (1 - t_on) : t >= t_off ? 0.9 : 1 - 0.1 * t / t_off;
      return t >= t_on ? alpha(t) : t >= t_off ? alpha(t_on) : alpha(t * t_on / t_off);
    };
    auto law = ms_product();
    auto f = ms_product_denoiser();
    for (auto o : {MaskedOptions().remask("cap").eta(0.5), MaskedOptions().remask("rescale").eta(0.8)}) {
      o.loop(true).t_on(t_on).t_off(t_off).alpha_on(with_alpha_on ? 0.9 : 0.0);
      for (const std::string sampler : {"ancestral", "mdlm-cached"}) {
        SamplerOptions so;
        so.method = to_json(o);
        ASSERT_EQ(masked_options(sampler, so.method).alpha_on(), o.alpha_on());  // the JSON round trip keeps it
        so.denoiser_uses_t = false;
        auto gen = testing::seeded(5);
        MarginalRecorder rec;
        auto x = make_sampler(sampler, so)(*p, f, grid, {N, kL}, gen, {}, rec.hook());
        const std::string what = sampler + " " + o.remask() + (with_alpha_on ? " alpha_on 0.9" : "");
        ASSERT_TRUE(((x >= 0) & (x < kK)).all().item<bool>()) << "masks left";
        ASSERT_EQ(rec.masked_frac.size(), grid.size());
        for (size_t k = 1; k + 1 < grid.size(); ++k) {
          const double q = 1.0 - expected_alpha(grid[k]);
          const double tol = 5.0 * std::sqrt(q * (1 - q) / double(N));
          EXPECT_LT((rec.masked_frac[k] - q).abs().max().item<double>(), tol) << what << " at t = " << grid[k];
        }
        for (size_t k = 0; k + 1 < grid.size(); ++k) {
          const bool in_loop = grid[k] <= t_on + 1e-12 && grid[k + 1] >= t_off - 1e-12;
          if (in_loop) EXPECT_GT(rec.step_events[k], 100) << what << ": no remasking in the loop step from " << grid[k];
          else EXPECT_EQ(rec.step_events[k], 0) << what << ": remasking outside the loop, step from " << grid[k];
        }
        EXPECT_GT(ms_pvalue(ms_cell_counts(x), law, N), 1e-4) << what;
      }
    }
  }
}

// On a correlated joint law the same 10-step chain's final law is not the data law: the reverse step draws the
// positions it decodes independently (the factorisation MDLM's step has too), so exactness above is the product
// law's; the chi-square detects the difference at this N (p < 1e-6).
TEST(ReMdm, TheLawTestSeesFactorisationErrorOnACorrelatedLaw) {
  auto p = ms_make();
  const int64_t N = 20000;
  SamplerOptions so;
  so.method = to_json(MaskedOptions().remask("cap").eta(0.5));
  auto gen = testing::seeded(4);
  auto x = make_sampler("ancestral", so)(*p, ms_joint_denoiser(*p, ms_joint()), time_grid(*p, 10), {N, kL}, gen, {});
  EXPECT_LT(ms_pvalue(ms_cell_counts(x), ms_joint(), N), 1e-6);
}

// eta = 0 (and the plain options through the masked step) is MDLM's chain: on the correlated joint law at 100 steps
// its law equals plain ancestral's (a two-sample chi-square homogeneity test over 27 cells, p > 1e-4), and
// mdlm-cached with remasking draws exactly what ancestral with remasking draws (same seed: the cache is exact).
TEST(ReMdm, EtaZeroIsThePlainChainAndTheCacheIsExact) {
  auto p = ms_make();
  const int64_t N = 20000;
  auto f = ms_joint_denoiser(*p, ms_joint());
  auto grid = time_grid(*p, 100);
  SamplerOptions plain, zero;
  zero.method = to_json(MaskedOptions().remask("cap").eta(0.0));
  auto g1 = testing::seeded(6), g2 = testing::seeded(7);
  auto a = ms_cell_counts(make_sampler("ancestral", plain)(*p, f, grid, {N, kL}, g1, {}));
  auto b = ms_cell_counts(make_sampler("ancestral", zero)(*p, f, grid, {N, kL}, g2, {}));
  auto pooled = (a + b) / double(2 * N);
  auto e = pooled * double(N);
  const double chi2 = ((a - e).square() / e + (b - e).square() / e).sum().item<double>();
  EXPECT_GT(torch::special::gammaincc(torch::tensor(13.0), torch::tensor(chi2 / 2)).item<double>(), 1e-4) << chi2;

  SamplerOptions ra, rc;
  ra.method = rc.method = to_json(MaskedOptions().remask("rescale").eta(0.3));
  rc.denoiser_uses_t = false;
  SamplerStats sa, sc;
  ra.stats = &sa, rc.stats = &sc;
  auto g3 = testing::seeded(9), g4 = testing::seeded(9);
  auto xa = make_sampler("ancestral", ra)(*p, f, grid, {64, kL}, g3, {});
  auto xc = make_sampler("mdlm-cached", rc)(*p, f, grid, {64, kL}, g4, {});
  EXPECT_TRUE(torch::equal(xa, xc));
  EXPECT_EQ(sa.network_calls, 100);
  EXPECT_LT(sc.network_rows, sa.network_rows);
}

// MaskGIT order: per step exactly k = M_t - round(M_0 (1 - alpha_s)) positions are decoded (M_0 = L at t = 1), and
// they are the k still-masked positions of highest score, the score computed here from the denoiser's law (fixed
// per position: independent positions) for each of max-prob, margin and -entropy. The three rankings differ on this
// law, so a sampler that used another score would fail. Cosine schedule: k varies along the chain.
TEST(MaskGit, DecodesExactlyKPerStepInTheNamedScoresOrder) {
  const int64_t L = 10, K = 4;
  register_builtins();
  auto pp = make_process({{"name", "absorbing"}, {"K", K}, {"steps", 0}, {"dtype", "float64"}, {"schedule", "cosine"}});
  auto& p = dynamic_cast<AbsorbingProcess&>(*pp);
  auto gen0 = testing::seeded(1);
  auto px0 = torch::softmax(2.5 * torch::randn({L, K}, gen0, torch::kFloat64), 1);  // [L, K]
  DenoiseFn f = [px0](const torch::Tensor& xt, const torch::Tensor&) {
    return torch::log(px0).unsqueeze(0).expand({xt.size(0), px0.size(0), px0.size(1)}).contiguous();
  };
  auto top = std::get<0>(px0.topk(2, 1));
  std::map<std::string, torch::Tensor> score = {
      {"max-prob", px0.amax(1)}, {"margin", top.select(1, 0) - top.select(1, 1)}, {"entropy", (px0 * px0.log()).sum(1)}};
  std::map<std::string, torch::Tensor> ranking;
  for (auto& [name, s] : score) ranking[name] = std::get<1>(s.sort(true, 0, true));
  ASSERT_FALSE(torch::equal(ranking["max-prob"], ranking["margin"]));
  ASSERT_FALSE(torch::equal(ranking["margin"], ranking["entropy"]));
  auto grid = time_grid(p, 6);
  for (const std::string name : {"max-prob", "margin", "entropy"}) {
    SamplerOptions so;
    so.method = to_json(MaskedOptions().unmask(name));
    std::vector<torch::Tensor> states;
    StepHook rec = [&](const torch::Tensor& x, const StepInfo&, torch::Generator&) { states.push_back(x.clone()); return x; };
    auto gen = testing::seeded(3);
    auto x = make_sampler("ancestral", so)(p, f, grid, {8, L}, gen, {}, rec);
    ASSERT_EQ(states.size(), grid.size());
    std::vector<int64_t> order;  // the positions in the order the chain decoded them (row 0)
    for (size_t k = 1; k < states.size(); ++k) {
      const double as = p.schedule().alpha(torch::tensor({grid[k]}, torch::kFloat64)).item<double>();
      const int64_t left = grid[k] <= 0 ? 0 : int64_t(std::llround(double(L) * (1.0 - as)));
      auto masked_t = states[k - 1] == K, masked_s = states[k] == K;
      auto k_expect = masked_t.sum(1) - left;  // [8]
      EXPECT_TRUE(torch::equal((masked_t & ~masked_s).sum(1), k_expect.clamp_min(0))) << name << " step " << k;
      EXPECT_TRUE((masked_s & ~masked_t).sum().item<int64_t>() == 0) << "a decoded token was masked again";
      // row 0: the newly decoded set is the next k of the ranking (a set, so sort before comparing)
      auto newly = (masked_t[0] & ~masked_s[0]).nonzero().squeeze(1);
      const int64_t n = newly.numel();
      auto expect = ranking[name].narrow(0, int64_t(order.size()), n);
      EXPECT_TRUE(torch::equal(std::get<0>(newly.sort()), std::get<0>(expect.sort()))) << name << " step " << k;
      for (int64_t i = 0; i < n; ++i) order.push_back(expect[i].item<int64_t>());
    }
    EXPECT_EQ(int64_t(order.size()), L);
    EXPECT_TRUE(((x >= 0) & (x < K)).all().item<bool>());
  }
}

// Options are checked where parsed, errors naming the option and the choices; remasking on a non-absorbing process
// is refused.
TEST(MaskedOptions, RefusesWhatDoesNotApply) {
  auto msg = [](const nlohmann::json& j) {
    try {
      masked_options("ancestral", j);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg({{"remask", "loop"}}).find("none, cap, rescale, conf"), std::string::npos);
  EXPECT_NE(msg({{"unmask", "best"}}).find("random, max-prob, margin, entropy"), std::string::npos);
  EXPECT_NE(msg({{"remask", "cap"}, {"eta", 1.5}}).find("'eta' must be a number in [0, 1]"), std::string::npos);
  EXPECT_NE(msg({{"eta", 0.1}}).find("belongs to remask cap or rescale"), std::string::npos);
  EXPECT_NE(msg({{"remask", "cap"}, {"unmask", "margin"}}).find("do not combine"), std::string::npos);
  EXPECT_NE(msg({{"snr", 1}}).find("has no option 'snr'"), std::string::npos);
  EXPECT_NE(msg({{"loop", true}}).find("needs remask cap, rescale or conf"), std::string::npos);
  EXPECT_NE(msg({{"remask", "cap"}, {"t_on", 0.5}}).find("'t_on' belongs to the ReMDM loop"), std::string::npos);
  EXPECT_NE(msg({{"remask", "cap"}, {"loop", 1}}).find("'loop' must be true or false"), std::string::npos);
  EXPECT_NE(msg({{"remask", "cap"}, {"loop", true}, {"t_on", 0.3}, {"t_off", 0.4}}).find("t_off < t_on"), std::string::npos);
  EXPECT_NE(msg({{"remask", "cap"}, {"loop", true}, {"alpha_on", 1.0}}).find("'alpha_on' must be a number in (0, 1)"),
            std::string::npos);
  {  // a loop that holds no step of the grid: [0.5, 0.52] between the 4-step grid's times 0.75 and 0.5
    auto p = ms_make();
    SamplerOptions lo;
    lo.method = to_json(MaskedOptions().remask("cap").eta(0.1).loop(true).t_on(0.52).t_off(0.5));
    auto gen = testing::seeded(0);
    DenoiseFn f = [](const torch::Tensor& x, const torch::Tensor&) { return torch::zeros({x.size(0), kL, kK}); };
    try {
      make_sampler("ancestral", lo)(*p, f, {1.0, 0.75, 0.5, 0.25, 0.0}, {2, kL}, gen, {});
      ADD_FAILURE() << "a loop holding no step ran";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("holds no step of the 4-step grid"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(make_sampler("tweedie", SamplerOptions{to_json(MaskedOptions().remask("cap").eta(0.1))}), std::invalid_argument);
  register_builtins();
  auto u = make_process({{"name", "uniform"}, {"K", kK}, {"steps", 0}});
  SamplerOptions so;
  so.method = to_json(MaskedOptions().remask("cap").eta(0.1));
  auto gen = testing::seeded(0);
  DenoiseFn f = [](const torch::Tensor& x, const torch::Tensor&) { return torch::zeros({x.size(0), kL, kK}); };
  EXPECT_THROW(make_sampler("ancestral", so)(*u, f, time_grid(*u, 4), {2, kL}, gen, {}), std::invalid_argument);
}

}  // namespace masked_step_test
}  // namespace gsdiff
