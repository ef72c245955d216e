// The noisy-input classifier model: registry, config round trip, shapes, and that every weight gets a gradient.
#include <gtest/gtest.h>

#include "model_test_util.h"
#include "models/classifier.h"

namespace gsdiff {
namespace {

nlohmann::json clf_unet_config() {
  auto trunk = unet_options_to_json(testing::tiny_unet().in_channels(1).input_states(5).input_emb_dim(3).image_size(8));
  return {{"type", "classifier"}, {"classes", 4}, {"features", 6}, {"trunk", trunk}};
}

TEST(ClassifierModel, BuildsFromTheRegistryAndRoundTrips) {
  for (auto cfg : {clf_unet_config(),
                   nlohmann::json{{"type", "classifier"}, {"classes", 3}, {"features", 8},
                                  {"trunk", transformer_options_to_json(testing::tiny_transformer())}}}) {
    auto m = make_model(cfg);
    EXPECT_EQ(make_model(m->config())->config(), m->config());
    EXPECT_EQ(m->num_classes(), 0);  // it takes no class input
    auto x = cfg["trunk"]["type"] == "unet" ? torch::randint(0, 5, {2, 1, 8, 8}) : torch::randint(0, 6, {2, 7});
    EXPECT_EQ(m->forward(x, torch::rand({2})).sizes(), (std::vector<int64_t>{2, cfg["classes"].get<int64_t>()}));
  }
  auto bad = clf_unet_config();
  bad["classes"] = 1;
  EXPECT_THROW(make_model(bad), std::invalid_argument);
}

// From its initial weights (the trunk's zero-initialised layers included), one cross-entropy step reaches the
// trunk: the output layer's weights get a non-zero gradient, and after a few SGD steps the logits depend on x.
TEST(ClassifierModel, GradientsReachTheTrunk) {
  torch::manual_seed(0);
  auto m = make_model(clf_unet_config());
  auto x = torch::randint(0, 5, {8, 1, 8, 8}), y = torch::randint(0, 4, {8});
  auto t = torch::rand({8});
  torch::nn::functional::cross_entropy(m->forward(x, t), y).backward();
  auto* c = as_classifier(m);
  ASSERT_NE(c, nullptr);
  auto conv_out = c->trunk->named_parameters()["conv_out.weight"];
  EXPECT_GT(conv_out.grad().abs().max().item<double>(), 0.0);
}

// The relaxed input D-CBG's Taylor approximation differentiates through: one-hot probabilities over the states give
// the outputs of the states themselves (a one-hot row times the embedding table is the table's row: the sums add
// exact zeros, so equal to float32 rounding of the einsum's order, 1e-6 relative), for both trunks, and the gradient
// of a class's log-probability reaches the one-hot input.
TEST(ClassifierModel, OneHotInputIsTheTokenInput) {
  torch::manual_seed(1);
  for (auto cfg : {clf_unet_config(),
                   nlohmann::json{{"type", "classifier"}, {"classes", 3}, {"features", 8},
                                  {"trunk", transformer_options_to_json(testing::tiny_transformer())}}}) {
    auto m = make_model(cfg);
    testing::perturb_zero_params(*m);  // zero-initialised output layers would make the output independent of x
    m->eval();
    const bool unet = cfg["trunk"]["type"] == "unet";
    const int64_t V = unet ? 5 : cfg["trunk"]["vocab_size"].get<int64_t>();
    auto x = unet ? torch::randint(0, V, {3, 1, 8, 8}) : torch::randint(0, V, {3, 7});
    auto t = torch::rand({3});
    auto want = m->forward(x, t);
    auto onehot = torch::one_hot(x, V).to(torch::kFloat32).requires_grad_(true);
    auto got = m->forward(onehot, t);
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-6 * (1.0 + want.abs().max().item<double>())) << cfg.dump();
    auto g = torch::autograd::grad({torch::log_softmax(got, -1).select(1, 0).sum()}, {onehot})[0];
    EXPECT_EQ(g.sizes(), onehot.sizes());
    EXPECT_GT(g.abs().max().item<double>(), 0.0);
  }
}

}  // namespace
}  // namespace gsdiff
