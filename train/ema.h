// Exponential moving average of model parameters, with the (1 + n) / (10 + n) warmup.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "train/flat_params.h"

namespace gsdiff {

class Ema {
 public:
  Ema(const torch::nn::Module& model, double decay, bool warmup);
  // The same average with the shadow of the parameters in `flat` kept as one buffer per group, laid out
  // like flat's: update() is then one mul_ + add_ per group. `flat` must outlive this Ema.
  Ema(const torch::nn::Module& model, const FlatParams& flat, double decay, bool warmup);
  // shadow = d * shadow + (1 - d) * param, d = min(decay, (1 + n) / (10 + n)) with warmup; n = updates so far.
  void update(const torch::nn::Module& model);
  void copy_to(torch::nn::Module& model) const;  // writes the averaged weights into model
  void save(torch::serialize::OutputArchive& ar) const;
  void load(torch::serialize::InputArchive& ar);
  int64_t updates() const { return updates_; }
  const std::map<std::string, torch::Tensor>& shadow() const { return shadow_; }

 private:
  double decay_;
  bool warmup_;
  int64_t updates_ = 0;
  std::map<std::string, torch::Tensor> shadow_;  // name -> [param shape] (views of flat_shadow_ when flat)
  const FlatParams* flat_ = nullptr;
  std::vector<torch::Tensor> flat_shadow_;  // per flat group: [N]
  std::vector<std::string> unflat_;         // parameters outside flat (no requires_grad): updated per tensor
};

}  // namespace gsdiff
