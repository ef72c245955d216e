// `gsdiff info` names everything a config or `gsdiff sample` can use: processes, models, samplers, objectives, guidance.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "cli_test_util.h"

namespace {

using gsdiff::testing::run_cli;

// The section of info's output that starts at the line `header` and ends at the next unindented line.
std::string section(const std::string& out, const std::string& header) {
  auto start = out.find("\n" + header);
  if (start == std::string::npos) start = out.rfind(header, 0) == 0 ? 0 : std::string::npos;
  if (start == std::string::npos) return {};
  std::istringstream in(out.substr(out.find('\n', start + 1) + 1));
  std::string line, body;
  while (std::getline(in, line) && !line.empty() && line[0] == ' ') body += line + "\n";
  return body;
}

// Every process name, model type and objective name in configs/*.json is listed in its section, and every sampler
// that `gsdiff sample --help` names is listed with the space it runs in.
TEST(CliInfo, ListsWhatTheConfigsAndTheSamplerFlagUse) {
  auto info = run_cli("info");
  ASSERT_EQ(info.rc, 0) << info.out;
  const auto processes = section(info.out, "processes:"), models = section(info.out, "models:");
  const auto samplers = section(info.out, "samplers"), objectives = section(info.out, "objectives");
  int configs = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(GSDIFF_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".json") continue;
    std::ifstream f(e.path());
    auto j = nlohmann::json::parse(f);
    ++configs;
    EXPECT_NE(processes.find("  " + j["process"]["name"].get<std::string>() + ": "), std::string::npos) << e.path();
    EXPECT_NE(models.find("  " + j["model"]["type"].get<std::string>() + "\n"), std::string::npos) << e.path();
    const std::string obj = j.contains("objective") ? j["objective"].value("name", "elbo") : "elbo";
    EXPECT_NE(objectives.find("  " + obj + ": "), std::string::npos) << e.path() << "\n" << objectives;
  }
  EXPECT_GE(configs, 8);
  auto help = run_cli("sample --help");
  ASSERT_EQ(help.rc, 0);
  for (const std::string n : {"ancestral", "ddim", "euler-maruyama", "heun", "dpm-solver++", "pc", "tau-leaping", "euler",
                              "tweedie", "mdlm-cached"}) {
    EXPECT_NE(help.out.find(n), std::string::npos) << n;
    EXPECT_NE(samplers.find(" " + n), std::string::npos) << n << "\n" << samplers;
  }
  EXPECT_NE(samplers.find("heun [s_churn, s_tmin, s_tmax, s_noise]"), std::string::npos) << samplers;
  EXPECT_NE(info.out.find("--classifier-approx auto exact taylor"), std::string::npos) << info.out;
}

}  // namespace
