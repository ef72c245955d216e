// Exponential moving average of parameters (Polyak averaging as used by DDPM and VDM).
#include "train/ema.h"

namespace gsdiff {

Ema::Ema(const torch::nn::Module& model, double decay, bool warmup) : decay_(decay), warmup_(warmup) {
  torch::NoGradGuard ng;
  for (const auto& p : model.named_parameters()) shadow_[p.key()] = p.value().detach().clone();
}

void Ema::update(const torch::nn::Module& model) {
  torch::NoGradGuard ng;
  double d = decay_;
  if (warmup_) d = std::min(d, (1.0 + double(updates_)) / (10.0 + double(updates_)));
  for (const auto& p : model.named_parameters()) shadow_.at(p.key()).mul_(d).add_(p.value().detach(), 1.0 - d);
  ++updates_;
}

void Ema::copy_to(torch::nn::Module& model) const {
  torch::NoGradGuard ng;
  for (auto& p : model.named_parameters()) p.value().copy_(shadow_.at(p.key()));
}

void Ema::save(torch::serialize::OutputArchive& ar) const {
  ar.write("updates", c10::IValue(updates_));
  for (const auto& kv : shadow_) ar.write("p." + kv.first, kv.second);
}

void Ema::load(torch::serialize::InputArchive& ar) {
  c10::IValue n;
  ar.read("updates", n);
  updates_ = n.toInt();
  torch::NoGradGuard ng;
  for (auto& kv : shadow_) {
    torch::Tensor t;
    ar.read("p." + kv.first, t);
    kv.second.copy_(t);
  }
}

}  // namespace gsdiff
