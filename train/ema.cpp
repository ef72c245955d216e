// Exponential moving average of parameters (Polyak averaging as used by DDPM and VDM).
#include "train/ema.h"

#include <unordered_map>

namespace gsdiff {

Ema::Ema(const torch::nn::Module& model, double decay, bool warmup) : decay_(decay), warmup_(warmup) {
  torch::NoGradGuard ng;
  for (const auto& p : model.named_parameters()) shadow_[p.key()] = p.value().detach().clone();
}

Ema::Ema(const torch::nn::Module& model, const FlatParams& flat, double decay, bool warmup)
    : decay_(decay), warmup_(warmup), flat_(&flat) {
  torch::NoGradGuard ng;
  std::unordered_map<const void*, std::string> name_of;  // TensorImpl -> parameter name
  for (const auto& p : model.named_parameters()) name_of[p.value().unsafeGetTensorImpl()] = p.key();
  for (const auto& g : flat.groups()) {
    flat_shadow_.push_back(g.data.clone());  // [N]
    for (size_t k = 0; k < g.index.size(); ++k) {
      const auto& p = flat.params()[g.index[k]];
      auto it = name_of.find(p.unsafeGetTensorImpl());
      TORCH_CHECK(it != name_of.end(), "Ema: a flat parameter is not a parameter of the model");
      shadow_[it->second] = flat_shadow_.back().narrow(0, g.offset[k], p.numel()).view(p.sizes());
      name_of.erase(it);
    }
  }
  for (const auto& p : model.named_parameters())
    if (!shadow_.count(p.key())) {
      shadow_[p.key()] = p.value().detach().clone();
      unflat_.push_back(p.key());
    }
}

void Ema::update(const torch::nn::Module& model) {
  torch::NoGradGuard ng;
  double d = decay_;
  if (warmup_) d = std::min(d, (1.0 + double(updates_)) / (10.0 + double(updates_)));
  if (flat_) {
    for (size_t i = 0; i < flat_shadow_.size(); ++i) flat_shadow_[i].mul_(d).add_(flat_->groups()[i].data, 1.0 - d);
    if (!unflat_.empty()) {
      auto params = model.named_parameters();
      for (const auto& name : unflat_) shadow_.at(name).mul_(d).add_(params[name].detach(), 1.0 - d);
    }
  } else {
    for (const auto& p : model.named_parameters()) shadow_.at(p.key()).mul_(d).add_(p.value().detach(), 1.0 - d);
  }
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
