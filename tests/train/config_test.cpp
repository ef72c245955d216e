// Config parsing: defaults, --set overrides, and errors that name the offending key.
#include <gtest/gtest.h>

#include "core/registry.h"
#include "train/config.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace gsdiff {
namespace {

using nlohmann::json;

std::string error_of(const json& j) {
  try {
    auto c = parse_config(j);
    build_process(c);
    build_model(c);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsFilledAndResolved) {
  auto c = parse_config(testing::gmm_config(10));
  EXPECT_EQ(c.train.steps(), 10);
  EXPECT_EQ(c.train.accumulate(), 1);
  EXPECT_EQ(c.resolved["train"]["beta2"].get<double>(), 0.999);
  EXPECT_EQ(c.resolved["objective"]["name"], "elbo");
}

TEST(Config, UnknownKeyNamesDottedPath) {
  auto j = testing::gmm_config(10);
  j["train"]["learning_rate"] = 0.1;
  auto msg = error_of(j);
  EXPECT_NE(msg.find("train.learning_rate"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a known field"), std::string::npos) << msg;
}

TEST(Config, UnknownSection) {
  auto j = testing::gmm_config(10);
  j["optimiser"] = json::object();
  auto msg = error_of(j);
  EXPECT_NE(msg.find("'optimiser'"), std::string::npos) << msg;
}

TEST(Config, WrongTypeNamesKey) {
  auto j = testing::gmm_config(10);
  j["train"]["steps"] = "many";
  auto msg = error_of(j);
  EXPECT_NE(msg.find("train.steps"), std::string::npos) << msg;
  EXPECT_NE(msg.find("wrong type"), std::string::npos) << msg;
}

TEST(Config, BadChoiceListsAllowed) {
  auto j = testing::gmm_config(10);
  j["objective"]["name"] = "magic";
  auto msg = error_of(j);
  EXPECT_NE(msg.find("objective.name"), std::string::npos) << msg;
  EXPECT_NE(msg.find("hybrid"), std::string::npos) << msg;
}

TEST(Config, UnknownProcessNameListsKnown) {
  register_builtins();
  auto j = testing::gmm_config(10);
  j["process"]["name"] = "gaussian-xx";
  auto msg = error_of(j);
  EXPECT_NE(msg.find("gaussian-xx"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gaussian-vp"), std::string::npos) << msg;
}

TEST(Config, UnknownModelTypeListsKnown) {
  register_builtins();
  auto j = testing::gmm_config(10);
  j["model"] = {{"type", "resnet9000"}};
  auto msg = error_of(j);
  EXPECT_NE(msg.find("resnet9000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unet"), std::string::npos) << msg;
}

TEST(Config, SimpleObjectiveNeedsGaussian) {
  register_builtins();
  auto j = testing::gmm_config(10);
  j["process"] = {{"name", "absorbing"}, {"K", 4}, {"steps", 0}};
  j["objective"]["name"] = "simple";
  auto c = parse_config(j);
  auto p = build_process(c);
  try {
    make_objective(c.objective, *p);
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("Gaussian"), std::string::npos) << e.what();
  }
}

TEST(Config, SetOverridesByDottedPath) {
  auto j = testing::gmm_config(10);
  apply_set(j, "train.lr=0.5");
  apply_set(j, "process.schedule=cosine");  // not JSON: taken as a string
  apply_set(j, "eval.exact=false");
  apply_set(j, "data.extra.deep=[1,2]");
  EXPECT_EQ(j["train"]["lr"].get<double>(), 0.5);
  EXPECT_EQ(j["process"]["schedule"], "cosine");
  EXPECT_EQ(j["eval"]["exact"], false);
  EXPECT_EQ(j["data"]["extra"]["deep"], json({1, 2}));
  EXPECT_THROW(apply_set(j, "no-equals-sign"), ConfigError);
  EXPECT_THROW(apply_set(j, "train.lr.x=1"), ConfigError);  // lr is not an object
}

}  // namespace
}  // namespace gsdiff
