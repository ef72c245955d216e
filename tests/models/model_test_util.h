// Helpers for the models tests: tiny configs, zero-init perturbation, config loading.
#pragma once
#include "models/autocast.h"
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "models/transformer.h"
#include "models/unet.h"

namespace gsdiff::testing {

// adaLN-zero and zero-init output layers make a fresh net output exactly 0 (and block most
// gradients); behaviour tests first give every all-zero parameter small random values.
inline void perturb_zero_params(torch::nn::Module& m, double std = 0.05) {
  torch::NoGradGuard g;
  for (auto& p : m.parameters())
    if (p.abs().max().item<double>() == 0.0) p.normal_(0.0, std);
}

inline nlohmann::json load_model_config(const std::string& name) {
  std::ifstream f(std::string(GSDIFF_SOURCE_DIR) + "/configs/models/" + name);
  EXPECT_TRUE(f.good()) << name;
  return nlohmann::json::parse(f);
}

// 8x8 images, 2 levels, attention at 4x4 with 2 heads.
inline UNetOptions tiny_unet() {
  UNetOptions o;
  o.in_channels(3)
      .ch(16)
      .ch_mult({1, 2})
      .num_res_blocks(1)
      .attn_resolutions({4})
      .image_size(8)
      .num_heads(2)
      .num_groups(4)
      .dropout(0.1);
  return o;
}

inline TransformerOptions tiny_transformer() {
  TransformerOptions o;
  o.vocab_size(6).out_dim(5).dim(32).depth(2).num_heads(4).cond_dim(16).dropout(0.1);
  return o;
}

using gsdiff::Bf16Autocast;  // models/autocast.h

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

}  // namespace gsdiff::testing
