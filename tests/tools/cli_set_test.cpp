// `--set key=value` with JSON values that hold commas (lists, objects) reaches the config whole (tools/cli_args).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tools/cli_test_util.h"

namespace {

using gsdiff::testing::kQuickstartConfig;
using gsdiff::testing::run_cli;

nlohmann::json info(const std::string& sets) {
  auto r = run_cli("info --config " + kQuickstartConfig + sets);
  EXPECT_EQ(r.rc, 0) << r.out;
  return nlohmann::json::parse(r.out.substr(r.out.find('{')));
}

TEST(CliSet, ListsAndObjectsWithCommas) {
  auto j = info(" --set 'model.ch_mult=[1,2]' --set 'objective={\"name\":\"elbo\",\"low_discrepancy\":false}'"
                " --set=train.steps=7 --set 'data.name=fashion-mnist'");
  EXPECT_EQ(j["model"]["ch_mult"], nlohmann::json::array({1, 2}));
  EXPECT_EQ(j["objective"]["low_discrepancy"], false);
  EXPECT_EQ(j["objective"]["name"], "elbo");
  EXPECT_EQ(j["train"]["steps"], 7);
  // The shrunk model is what gets built: fewer parameters than the config's [1, 2, 2].
  EXPECT_LT(j["parameters"].get<int64_t>(), info("")["parameters"].get<int64_t>());
}

TEST(CliSet, MissingValueAndBadAssignmentAreErrors) {
  auto r = run_cli("info --config " + kQuickstartConfig + " --set");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("--set"), std::string::npos) << r.out;
  r = run_cli("info --config " + kQuickstartConfig + " --set '[1,2]'");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("expected key.path=value"), std::string::npos) << r.out;
}

}  // namespace
