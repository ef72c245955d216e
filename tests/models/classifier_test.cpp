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

}  // namespace
}  // namespace gsdiff
