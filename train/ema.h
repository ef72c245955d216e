// Exponential moving average of model parameters, with the (1 + n) / (10 + n) warmup.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

namespace gsdiff {

class Ema {
 public:
  Ema(const torch::nn::Module& model, double decay, bool warmup);
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
  std::map<std::string, torch::Tensor> shadow_;
};

}  // namespace gsdiff
