// Tests for self-conditioning in the U-Net and the transformer: off = the model as before, on = an extra input.
#include <gtest/gtest.h>

#include "model_test_util.h"
#include "models/denoiser.h"
#include "test_util.h"

namespace gsdiff {
namespace {
using testing::max_abs_diff;
using testing::perturb_zero_params;

// fn() throws, and its message contains `needle` (the field's name).
template <typename F>
void sc_expect_throw_naming(F fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one naming " << needle;
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// Builds cfg with the global seed set, with "self_condition" as given (absent when null).
DenoiserNet sc_build(nlohmann::json cfg, const nlohmann::json& sc) {
  if (!sc.is_null()) cfg["self_condition"] = sc;
  torch::manual_seed(11);
  auto m = make_model(cfg);
  m->eval();
  return m;
}

struct ScCase {
  nlohmann::json cfg;
  torch::Tensor x;    // network input
  torch::Tensor est;  // an estimate of the right shape
  std::vector<std::string> extra;  // the parameters self-conditioning adds
};

std::vector<ScCase> sc_cases() {
  std::vector<ScCase> v;
  torch::manual_seed(3);
  v.push_back({unet_options_to_json(testing::tiny_unet()), torch::randn({2, 3, 8, 8}), torch::randn({2, 3, 8, 8}), {"sc_conv.weight"}});
  v.push_back({unet_options_to_json(testing::tiny_unet().input_states(4).input_emb_dim(3).output_states(4)),
               torch::randint(0, 4, {2, 3, 8, 8}), torch::softmax(torch::randn({2, 3, 8, 8, 4}), -1), {"sc_embed.weight"}});
  v.push_back({transformer_options_to_json(testing::tiny_transformer()), torch::randint(0, 6, {2, 7}),
               torch::softmax(torch::randn({2, 7, 5}), -1), {"sc_proj.weight"}});
  v.push_back({transformer_options_to_json(testing::tiny_transformer().input_dim(4)), torch::randn({2, 7, 4}),
               torch::randn({2, 7, 4}), {"sc_proj.weight"}});
  return v;
}

// Off (absent or false): the same parameters, draw for draw, as with it on minus the added ones, and the same
// outputs bit for bit as the self-conditioned model fed zeros (its added weights start at zero).
TEST(SelfCondition, OffIsTheModelWithoutItAndOnAddsOnlyItsInput) {
  for (auto& c : sc_cases()) {
    auto absent = sc_build(c.cfg, nullptr), off = sc_build(c.cfg, false), on = sc_build(c.cfg, true);
    EXPECT_FALSE(absent->self_conditioned());
    EXPECT_TRUE(on->self_conditioned());
    EXPECT_EQ(absent->config(), off->config());           // older configs and checkpoints read the same
    EXPECT_FALSE(off->config().contains("self_condition"));  // and their saved config has no new key
    EXPECT_EQ(on->config().at("self_condition"), true);
    EXPECT_EQ(make_model(on->config())->config(), on->config());  // round trip
    auto po = off->named_parameters(), pn = on->named_parameters();
    EXPECT_EQ(pn.size(), po.size() + c.extra.size());
    for (const auto& kv : po) EXPECT_TRUE(torch::equal(kv.value(), pn[kv.key()])) << kv.key();
    for (const auto& name : c.extra) EXPECT_EQ(pn[name].abs().max().item<double>(), 0.0) << name;
    perturb_zero_params(*absent);  // a trained-looking model, its weights copied into the self-conditioned one
    {
      torch::NoGradGuard g;
      for (const auto& kv : absent->named_parameters()) pn[kv.key()].copy_(kv.value());
    }
    auto t = torch::rand({2});
    auto ref = absent->forward(c.x, t);
    EXPECT_TRUE(torch::equal(ref, on->forward(c.x, t)));                  // zeros for the estimate
    EXPECT_TRUE(torch::equal(ref, on->forward_self_cond(c.x, t, {}, {})));
    EXPECT_TRUE(torch::equal(ref, on->forward_self_cond(c.x, t, {}, c.est)));  // its input weights are still 0
    EXPECT_THROW(absent->forward_self_cond(c.x, t, {}, c.est), std::invalid_argument);
  }
}

// With its input weights non-zero the estimate enters the output; an all-zero estimate is the same as none
// (float error only: a bias-free map of zeros adds exact zeros); a wrongly shaped estimate is refused.
TEST(SelfCondition, TheEstimateEntersTheOutput) {
  for (auto& c : sc_cases()) {
    auto on = sc_build(c.cfg, true);
    perturb_zero_params(*on);
    auto t = torch::rand({2});
    auto none = on->forward_self_cond(c.x, t, {}, {});
    EXPECT_GT(max_abs_diff(none, on->forward_self_cond(c.x, t, {}, c.est)), 1e-4);
    EXPECT_TRUE(torch::equal(none, on->forward_self_cond(c.x, t, {}, torch::zeros_like(c.est))));
    EXPECT_THROW(on->forward_self_cond(c.x, t, {}, c.est.narrow(-1, 0, 1)), std::invalid_argument);
  }
}

TEST(SelfCondition, BadOptionsNameTheField) {
  auto cfg = unet_options_to_json(testing::tiny_unet().input_states(4).input_emb_dim(3));
  cfg["self_condition"] = true;  // categorical input without a categorical head: no p(x0 | x_t) to feed back
  sc_expect_throw_naming([&] { make_model(cfg); }, "self_condition");
  cfg = transformer_options_to_json(testing::tiny_transformer());
  cfg["self_condition"] = "yes";
  sc_expect_throw_naming([&] { make_model(cfg); }, "self_condition");
}

}  // namespace
}  // namespace gsdiff
