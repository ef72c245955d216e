// A self-conditioned model's export: forward(x_t, t, estimate) is the model's, and sampling from it is sampling from the model.
#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

#include "core/registry.h"
#include "models/transformer.h"
#include "models/unet.h"
#include "sample/export.h"
#include "sample/guidance.h"
#include "sample/sampler.h"
#include "test_util.h"

namespace gsdiff {
namespace export_self_condition {

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("gsdiff_sc_" + std::to_string(::getpid()) + "_" + name)).string();
}

// Every weight drawn afresh (the estimate's projection starts at zero, so an untrained model would ignore it).
void randomise(DenoiserNet net, uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = testing::seeded(seed);
  for (auto& p : net->parameters()) p.copy_(at::randn(p.sizes(), gen) * 0.2);
  net->eval();
}

struct Case {
  std::unique_ptr<Process> process;
  DenoiserNet net;
  torch::Tensor x, t;  // a state the network takes [B, ...] and t [B]
};

Case transformer_case() {
  register_builtins();
  Case c{make_process({{"name", "absorbing"}, {"K", 5}, {"steps", 0}}), nullptr, {}, {}};
  TransformerOptions o;
  o.vocab_size(6).out_dim(5).dim(16).depth(1).num_heads(2).cond_dim(8).dropout(0).self_condition(true);
  c.net = as_denoiser(Transformer(o));
  randomise(c.net, 1);
  auto gen = testing::seeded(2);
  c.x = at::randint(0, 6, {3, 4}, gen);  // [B, L] tokens, some masked (5)
  c.t = torch::full({3}, 0.6, torch::kFloat64);
  return c;
}

Case unet_case() {
  register_builtins();
  Case c{make_process({{"name", "gaussian-vp"}, {"schedule", "linear-logsnr"}, {"steps", 0}}), nullptr, {}, {}};
  UNetOptions o;
  o.in_channels(1).ch(8).ch_mult({1, 2}).num_res_blocks(1).attn_resolutions({4}).image_size(8).num_groups(4).dropout(0)
      .self_condition(true);
  c.net = as_denoiser(UNet(o));
  randomise(c.net, 3);
  auto gen = testing::seeded(4);
  c.x = at::randn({3, 1, 8, 8}, gen);  // [B, C, H, W]
  c.t = torch::full({3}, 0.4, torch::kFloat64);
  return c;
}

void expect_export_is_the_model(Case c, const std::string& name) {
  const std::string path = temp_file(name + ".pt");
  auto meta = export_meta(c.process->options_json(), c.net->config(), c.x[0].sizes().vec(), "");
  auto est = example_estimate(*c.process, c.net, c.x, c.t);  // [B, ...] or [B, ..., K]
  export_model(c.net, meta, c.x, c.t, path, est);
  auto ex = load_export(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(ex.meta.value("self_condition", false)) << ex.meta.dump();
  EXPECT_EQ(ex.meta["self_condition_estimate"]["shape"].get<std::vector<int64_t>>(),
            std::vector<int64_t>(est.sizes().begin() + 1, est.sizes().end()));

  torch::NoGradGuard ng;
  auto tf = c.t.to(torch::kFloat32);
  auto gen = testing::seeded(5);
  auto other = torch::softmax(at::randn(est.sizes(), gen), -1).to(torch::kFloat32);  // another estimate, same shape
  // float32 through the same ATen ops in the traced graph: equal up to summation order (the U-Net's eager blocks run
  // fused CPU kernels), a few ulps of outputs of order 1.
  const double rtol = 1e-4, atol = 1e-5;
  for (const auto& e : {est, other}) {
    auto want = c.net->forward_self_cond(c.x, tf, {}, e);
    auto got = ex.module->forward({c.x, tf, e}).toTensor();
    EXPECT_TRUE(torch::allclose(got, want, rtol, atol)) << name << ": max diff " << (got - want).abs().max().item<double>();
  }
  // Zeros through the export are the model without an estimate (its first call), and the estimate matters.
  auto zeros = ex.module->forward({c.x, tf, torch::zeros_like(est)}).toTensor();
  auto plain = c.net->forward_self_cond(c.x, tf, {}, {});
  EXPECT_TRUE(torch::allclose(zeros, plain, rtol, atol)) << name;
  auto a = ex.module->forward({c.x, tf, est}).toTensor(), b = ex.module->forward({c.x, tf, other}).toTensor();
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-3) << name << ": the export ignores its estimate input";
}

TEST(SelfConditionExport, TracedForwardIsTheTransformerWithItsEstimate) { expect_export_is_the_model(transformer_case(), "tf"); }

TEST(SelfConditionExport, TracedForwardIsTheUNetWithItsEstimate) { expect_export_is_the_model(unet_case(), "unet"); }

// The chain from the export (export_denoise_fn: zeros, then each call's estimate fed to the next) is the chain from
// the model (sampling_denoise_fn) with the same seed: the same tokens, and Gaussian states equal to float error.
// Without the feedback (plain forward with zeros every step) the chain differs, so the comparison can fail.
void expect_same_chain(Case c, const std::string& name, const std::string& sampler) {
  const std::string path = temp_file(name + "_chain.pt");
  export_model(c.net, export_meta(c.process->options_json(), c.net->config(), c.x[0].sizes().vec(), ""), c.x, c.t, path,
               example_estimate(*c.process, c.net, c.x, c.t));
  auto ex = load_export(path);
  std::filesystem::remove(path);
  auto run = make_sampler(sampler, SamplerOptions{});
  auto grid = time_grid(*c.process, 12, "uniform");
  auto shape = c.x.sizes().vec();
  shape[0] = 6;
  auto chain = [&](const DenoiseFn& f) {
    auto gen = testing::seeded(7);
    return run(*c.process, f, grid, shape, gen, {}, {});
  };
  auto from_model = chain(sampling_denoise_fn(*c.process, c.net));
  auto from_export = chain(export_denoise_fn(*c.process, ex));
  auto no_feedback = chain(model_denoise_fn(c.net));
  if (from_model.is_floating_point()) {
    EXPECT_TRUE(torch::allclose(from_export, from_model, 1e-4, 1e-4)) << name << ": max diff "
                                                                      << (from_export - from_model).abs().max().item<double>();
    EXPECT_GT((no_feedback - from_model).abs().max().item<double>(), 1e-3) << name;
  } else {
    EXPECT_TRUE(torch::equal(from_export, from_model)) << name << "\n" << from_export << "\n" << from_model;
    EXPECT_FALSE(torch::equal(no_feedback, from_model)) << name;
  }
}

TEST(SelfConditionExport, SamplingFromTheExportIsSamplingFromTheModel) {
  expect_same_chain(transformer_case(), "tf", "ancestral");
  expect_same_chain(unet_case(), "unet", "ddim");
}

TEST(SelfConditionExport, ExportWithoutAnEstimateIsRefused) {
  auto c = transformer_case();
  EXPECT_THROW(export_model(c.net, export_meta(c.process->options_json(), c.net->config(), {4}, ""), c.x, c.t,
                            temp_file("refused.pt")),
               std::invalid_argument);
}

}  // namespace export_self_condition
}  // namespace gsdiff
