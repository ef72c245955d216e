// TorchScript export: eager equality at other batch sizes, metadata, sampling equality, Python load.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/registry.h"
#include "models/model_test_util.h"
#include "models/onednn_conv.h"
#include "models/trace.h"
#include "sample/export.h"
#include "sample/guidance.h"
#include "sample/sampler.h"
#include "test_util.h"

namespace gsdiff {
namespace {

struct ExportCase {
  std::string name;
  std::function<DenoiserNet()> build;
  nlohmann::json process;
  std::vector<int64_t> shape;  // one example
  bool categorical;
  int64_t states;  // input states (categorical)
};

std::vector<ExportCase> cases() {
  return {
      {"unet_continuous", [] { return as_denoiser(UNet(testing::tiny_unet())); },
       {{"name", "gaussian-vp"}, {"steps", 0}, {"schedule", "cosine"}}, {3, 8, 8}, false, 0},
      {"unet_categorical",
       [] { return as_denoiser(UNet(testing::tiny_unet().input_states(5).input_emb_dim(4).output_states(4))); },
       {{"name", "absorbing"}, {"K", 4}, {"steps", 0}}, {3, 8, 8}, true, 5},
      {"transformer_categorical", [] { return as_denoiser(Transformer(testing::tiny_transformer())); },
       {{"name", "absorbing"}, {"K", 5}, {"steps", 0}}, {12}, true, 6},
      {"transformer_continuous", [] { return as_denoiser(Transformer(testing::tiny_transformer().input_dim(8).out_dim(8))); },
       {{"name", "gaussian-vp"}, {"steps", 0}}, {6, 8}, false, 0},
  };
}

torch::Tensor example(const ExportCase& c, int64_t B) {
  std::vector<int64_t> s{B};
  s.insert(s.end(), c.shape.begin(), c.shape.end());
  int64_t n = 1;
  for (auto d : s) n *= d;
  if (c.categorical) return (torch::arange(n, torch::kLong) % c.states).reshape(s);
  return torch::linspace(-1.0, 1.0, n).reshape(s);
}

std::string tmp(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("gsdiff_export_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return (d / name).string();
}

TEST(Export, EagerEqualityMetadataAndSamplingFromTheExport) {
  register_builtins();
  for (const auto& c : cases()) {
    torch::manual_seed(0);
    auto net = c.build();
    testing::perturb_zero_params(*net);
    net->eval();
    auto process = make_process(c.process);
    auto path = tmp(c.name + ".pt");
    auto meta = export_meta(process->options_json(), net->config(), c.shape, c.categorical ? "abcd" : "");
    meta["process"]["name"] = process->name();
    export_model(net, meta, example(c, 2), torch::full({2}, 0.5), path);
    auto loaded = load_export(path);
    EXPECT_EQ(loaded.meta["process"]["name"], process->name()) << c.name;
    EXPECT_EQ(loaded.meta["data_shape"].get<std::vector<int64_t>>(), c.shape);
    EXPECT_EQ(loaded.meta["model"], net->config());
    auto rebuilt = make_process(loaded.meta["process"]);  // the process comes back from the export alone
    EXPECT_EQ(rebuilt->options_json(), process->options_json());
    for (int64_t B : {1, 5}) {
      auto x = example(c, B);
      auto t = torch::linspace(0.1, 0.9, B);
      auto eager = net->forward(x, t);
      auto jit = loaded.module->forward({x, t}).toTensor();
      EXPECT_LT((eager - jit).abs().max().item<double>(), 1e-5) << c.name << " B=" << B;
    }
    // Sampling from the export equals sampling from the module for the same seed.
    std::vector<int64_t> shape{3};
    shape.insert(shape.end(), c.shape.begin(), c.shape.end());
    auto sampler = make_sampler(c.categorical ? "ancestral" : "ddim");
    auto grid = time_grid(*process, 5);
    auto g1 = testing::seeded(8), g2 = testing::seeded(8);
    // The same convolution kernels on both sides: the trace records ATen's, and the module's cached oneDNN
    // ones differ from them by float rounding (within the 1e-5 above), which DDIM's x0 = (x - sigma eps) / alpha
    // multiplies by sigma / alpha, large at the first steps
    // (measured 1.5e-3 after 5 steps; models/onednn_conv.h has its own tests).
    set_cached_conv(false);
    auto a = sampler(*process, model_denoise_fn(net), grid, shape, g1, {});
    set_cached_conv(true);
    auto b = sampler(*rebuilt, jit_denoise_fn(loaded.module), grid, shape, g2, {});
    if (c.categorical)
      EXPECT_TRUE(torch::equal(a, b)) << c.name;
    else
      EXPECT_LT((a - b).abs().max().item<double>(), 1e-4) << c.name;
  }
}

TEST(Export, MissingMetadataIsAnError) {
  auto net = as_denoiser(Transformer(testing::tiny_transformer()));
  EXPECT_THROW(export_model(net, nlohmann::json::object(), torch::zeros({2, 4}, torch::kLong), torch::rand({2}), tmp("x.pt")),
               std::invalid_argument);
  auto traced = trace_model(net, torch::zeros({2, 4}, torch::kLong), torch::rand({2}));
  traced.save(tmp("plain.pt"));
  EXPECT_THROW(load_export(tmp("plain.pt")), std::runtime_error);
}

// Python's torch.jit.load (GSDIFF_PYTHON: the project venv's torch 2.13, the same LibTorch as this build; on
// the LibTorch 1.13 build it loads a 1.13 archive in 2.13) reads the archive and its gsdiff.json and computes
// the same output, element for element, on the same deterministic input.
TEST(Export, LoadsInPython) {
  const std::string py = GSDIFF_PYTHON;
  if (std::system((py + " -c 'import torch' >/dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << py << " cannot import torch: run scripts/setup.sh";
  register_builtins();
  int checked = 0;
  for (const auto& c : cases()) {
    if (c.name != "unet_continuous" && c.name != "transformer_categorical") continue;
    torch::manual_seed(1);
    auto net = c.build();
    testing::perturb_zero_params(*net);
    net->eval();
    auto process = make_process(c.process);
    auto meta = export_meta(process->options_json(), net->config(), c.shape, "");
    meta["process"]["name"] = process->name();
    auto path = tmp(c.name + "_py.pt");
    export_model(net, meta, example(c, 2), torch::full({2}, 0.5), path);
    const int64_t B = 4;
    auto want = net->forward(example(c, B), torch::full({B}, 0.3)).to(torch::kFloat64).flatten();  // [B * ...]
    std::string shape = "(" + std::to_string(B);
    int64_t n = B;
    for (auto d : c.shape) shape += "," + std::to_string(d), n *= d;
    shape += ")";
    std::string input = c.categorical ? "(torch.arange(" + std::to_string(n) + ") % " + std::to_string(c.states) + ").reshape" + shape
                                      : "torch.linspace(-1.0, 1.0, " + std::to_string(n) + ").reshape" + shape;
    auto script = tmp(c.name + ".py"), out = tmp(c.name + ".out");
    std::ofstream(script) << "import json, torch\n"
                          << "files = {'gsdiff.json': ''}\n"
                          << "m = torch.jit.load('" << path << "', _extra_files=files)\n"
                          << "meta = json.loads(files['gsdiff.json'])\n"
                          << "y = m(" << input << ", torch.full((" << B << ",), 0.3)).double().flatten()\n"
                          << "print(meta['process']['name'], y.numel())\n"
                          << "print('\\n'.join(repr(v) for v in y.tolist()))\n";
    // stderr apart: torch 2.14 warns on torch.jit.load (TorchScript's deprecation), which is not output
    ASSERT_EQ(std::system((py + " " + script + " > " + out + " 2> " + out + ".err").c_str()), 0)
        << c.name << ": " << std::ifstream(out + ".err").rdbuf();
    std::ifstream in(out);
    std::string name;
    int64_t count = 0;
    in >> name >> count;
    EXPECT_EQ(name, process->name());
    ASSERT_EQ(count, want.numel()) << c.name;
    std::vector<double> got(count);
    for (auto& v : got) in >> v;
    ASSERT_TRUE(in) << c.name << ": could not read " << count << " values from " << out;
    auto y = torch::tensor(got, torch::kFloat64);
    // The scripted graph and the eager module run the same float32 kernels on the same LibTorch: agreement to
    // float32 rounding (1e-5 of the output's scale); a wrong weight, layout or time input moves whole entries.
    const double scale = want.abs().max().item<double>();
    ASSERT_GT(scale, 0.0);
    EXPECT_TRUE(torch::allclose(y, want, 1e-5, 1e-5 * scale))
        << c.name << ": max |diff| " << (y - want).abs().max().item<double>() << " of scale " << scale;
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

}  // namespace
}  // namespace gsdiff
