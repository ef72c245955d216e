// Each sampler's own options: parsed from JSON, checked by make_sampler, errors listing the sampler's options.
#include <gtest/gtest.h>

#include "sample/method_options.h"
#include "sample/sampler.h"

namespace gsdiff {
namespace method_options {

std::string error_of(const std::string& sampler, const nlohmann::json& method) {
  SamplerOptions o;
  o.method = method;
  try {
    make_sampler(sampler, o);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(MethodOptions, ParsedWithTheirDefaultsAndRoundTripped) {
  EXPECT_EQ(ddim_options(nlohmann::json::object()).eta(), 0.0);
  EXPECT_EQ(ddim_options({{"eta", 0.5}}).eta(), 0.5);
  auto pc = pc_options({{"snr", 0.02}});
  EXPECT_EQ(pc.snr(), 0.02);
  EXPECT_EQ(pc.corrector_steps(), 1);
  EXPECT_EQ(pc_options(to_json(PcOptions().snr(0.3).corrector_steps(4))).corrector_steps(), 4);
  EXPECT_TRUE(tau_leaping_options(to_json(TauLeapingOptions().ordinal(true))).ordinal());
  EXPECT_FALSE(tau_leaping_options(nlohmann::json()).ordinal());
}

TEST(MethodOptions, AnotherSamplersOptionIsRefusedWithTheKnownOnes) {
  EXPECT_NE(error_of("pc", {{"eta", 1.0}}).find("sampler 'pc' has no option 'eta'; its options: snr, corrector_steps"),
            std::string::npos);
  EXPECT_NE(error_of("tweedie", {{"snr", 0.1}}).find("sampler 'tweedie' has no option 'snr'; its options: none"),
            std::string::npos);
  // ancestral's options are the absorbing process's (sample/masked_step.h)
  EXPECT_NE(error_of("ancestral", {{"snr", 0.1}}).find("sampler 'ancestral' has no option 'snr'; its options: remask, eta, unmask"),
            std::string::npos);
  EXPECT_NE(error_of("ddim", {{"eta", -1.0}}).find("option 'eta' must be a number >= 0"), std::string::npos);
  EXPECT_NE(error_of("pc", {{"corrector_steps", 1.5}}).find("'corrector_steps' must be an integer"), std::string::npos);
  EXPECT_NE(error_of("tau-leaping", {{"ordinal", 1}}).find("'ordinal' must be true or false"), std::string::npos);
  EXPECT_EQ(error_of("ddim", {{"eta", 1.0}}), "");
}

}  // namespace method_options
}  // namespace gsdiff
