// Every shipped config in configs/*.json parses and builds its process, model and objective.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/registry.h"
#include "train/config.h"
#include "train/objectives.h"
#include "train/trainer.h"

namespace gsdiff {
namespace {

TEST(ShippedConfigs, ParseAndBuild) {
  register_builtins();
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(GSDIFF_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".json") continue;
    SCOPED_TRACE(e.path().string());
    ++n;
    Config c;
    ASSERT_NO_THROW(c = load_config(e.path().string())) << e.path();
    EXPECT_TRUE(c.resolved.contains("comment")) << "each config names its source in 'comment'";
    std::unique_ptr<Process> p;
    try {
      p = build_process(c);
    } catch (const std::exception& ex) {
      ADD_FAILURE() << "process: " << ex.what();
      continue;
    }
    try {
      auto m = build_model(c);
      EXPECT_GT(count_parameters(*m), 0);
    } catch (const std::exception& ex) {
      ADD_FAILURE() << "model: " << ex.what();
    }
    EXPECT_NO_THROW(make_objective(c.objective, *p));
  }
  EXPECT_GE(n, 8);
}

}  // namespace
}  // namespace gsdiff
