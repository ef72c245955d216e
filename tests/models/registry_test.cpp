// Tests for the model registry and the shipped model configs (configs/models/*.json).
#include "model_test_util.h"
#include "models/denoiser.h"
#include "test_util.h"

namespace gsdiff {
namespace {
using testing::load_model_config;

TEST(ModelRegistry, BuiltinsAreKnown) {
  auto names = model_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "unet"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "transformer"), names.end());
}

TEST(ModelRegistry, UnknownTypeListsKnownNames) {
  try {
    make_model({{"type", "mamba"}});
    FAIL();
  } catch (const ModelConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'mamba'"), std::string::npos) << m;
    EXPECT_NE(m.find("transformer"), std::string::npos) << m;
    EXPECT_NE(m.find("unet"), std::string::npos) << m;
  }
  EXPECT_THROW(make_model({{"ch", 3}}), ModelConfigError);
}

TEST(ModelRegistry, UnknownOptionKeyIsAnError) {
  try {
    make_model({{"type", "unet"}, {"channels", 64}});
    FAIL();
  } catch (const ModelConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'channels'"), std::string::npos) << e.what();
  }
}

TEST(ModelRegistry, UserModelCanBeRegistered) {
  struct Identity : DenoiserNetImpl {
    torch::Tensor forward(torch::Tensor x, torch::Tensor, torch::Tensor) override { return x * 2; }
    int64_t num_classes() const override { return 0; }
    nlohmann::json config() const override { return {{"type", "test-identity"}}; }
  };
  register_model("test-identity", [](const nlohmann::json&) { return as_denoiser(std::make_shared<Identity>()); });
  auto net = make_model({{"type", "test-identity"}});
  EXPECT_TRUE(net(torch::ones({2}), torch::zeros({2})).equal(torch::full({2}, 2.0)));
}

TEST(ModelRegistry, ConfigRoundTripsThroughMakeModel) {
  auto net = make_model(load_model_config("transformer-tiny.json"));
  auto again = make_model(net->config());
  EXPECT_EQ(again->config(), net->config());
  EXPECT_EQ(count_parameters(*again), count_parameters(*net));
}

TEST(ModelRegistry, CountParametersTrainableOnly) {
  auto net = make_model(load_model_config("transformer-tiny.json"));
  const int64_t all = count_parameters(*net);
  net->named_parameters()["head.weight"].set_requires_grad(false);
  EXPECT_EQ(count_parameters(*net, true), all - 64 * 27);
}

// Exact parameter counts of every shipped config (construct and count; no forward).
TEST(ShippedConfigs, ExactParameterCounts) {
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"unet-ddpm-cifar10.json", 35746307}, {"unet-tiny.json", 702499},           {"unet-fashion.json", 1623169},
      {"transformer-tiny.json", 141339},    {"transformer-small.json", 12581275}, {"transformer-base.json", 92403739},
  };
  for (const auto& [file, count] : expected) {
    auto net = make_model(load_model_config(file));
    EXPECT_EQ(count_parameters(*net), count) << file;
  }
}

TEST(ShippedConfigs, SmallOnesRunAForward) {
  auto unet = make_model(load_model_config("unet-tiny.json"));
  EXPECT_EQ(unet(torch::randn({1, 3, 32, 32}), torch::rand({1})).sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
  auto fashion = make_model(load_model_config("unet-fashion.json"));
  EXPECT_EQ(fashion(torch::randn({1, 1, 28, 28}), torch::rand({1})).sizes(), (std::vector<int64_t>{1, 1, 28, 28}));
  auto tr = make_model(load_model_config("transformer-tiny.json"));
  EXPECT_EQ(tr(torch::randint(0, 28, {2, 256}), torch::rand({2})).sizes(), (std::vector<int64_t>{2, 256, 27}));
}

}  // namespace
}  // namespace gsdiff
