// AdamW over flat parameter buffers (decoupled weight decay, bias correction), with its checkpoint state.
#include "train/fused_adamw.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace gsdiff {

namespace {
constexpr const char* kFormat = "gsdiff-fused-adamw-1";
}

FusedAdamW::FusedAdamW(FlatParams& flat, AdamWHyper h) : flat_(flat), h_(h) {
  for (const auto& g : flat_.groups()) {
    m_.push_back(torch::zeros_like(g.data));      // [N]
    v_.push_back(torch::zeros_like(g.data));      // [N]
    denom_.push_back(torch::empty_like(g.data));  // [N]
  }
}

void FusedAdamW::step() {
  torch::NoGradGuard ng;
  ++step_;
  const double bias_correction1 = 1 - std::pow(h_.beta1, double(step_));
  const double bias_correction2 = 1 - std::pow(h_.beta2, double(step_));
  const double step_size = h_.lr / bias_correction1;
  auto& groups = flat_.groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    auto& p = groups[i].data;
    const auto& g = groups[i].grad;
    if (h_.weight_decay != 0) p.mul_(1 - h_.lr * h_.weight_decay);
    m_[i].mul_(h_.beta1).add_(g, 1 - h_.beta1);
    v_[i].mul_(h_.beta2).addcmul_(g, g, 1 - h_.beta2);
    torch::sqrt_out(denom_[i], v_[i]).div_(std::sqrt(bias_correction2)).add_(h_.eps);
    p.addcdiv_(m_[i], denom_[i], -step_size);
  }
}

void FusedAdamW::save(torch::serialize::OutputArchive& ar) const {
  ar.write("format", c10::IValue(std::string(kFormat)));
  ar.write("step", c10::IValue(step_));
  ar.write("groups", c10::IValue(static_cast<int64_t>(m_.size())));
  for (size_t i = 0; i < m_.size(); ++i) {
    ar.write("exp_avg." + std::to_string(i), m_[i]);
    ar.write("exp_avg_sq." + std::to_string(i), v_[i]);
  }
}

void FusedAdamW::load(torch::serialize::InputArchive& ar) {
  c10::IValue format;
  if (!ar.try_read("format", format)) return load_torch_adamw(ar);
  if (format.toStringRef() != kFormat)
    throw std::runtime_error("optimizer state: unknown format '" + format.toStringRef() + "'");
  c10::IValue step, groups;
  ar.read("step", step);
  ar.read("groups", groups);
  if (groups.toInt() != static_cast<int64_t>(m_.size()))
    throw std::runtime_error("optimizer state: " + std::to_string(groups.toInt()) + " parameter groups, this model has " +
                             std::to_string(m_.size()));
  torch::NoGradGuard ng;
  auto read = [&](const std::string& key, torch::Tensor& dst) {
    torch::Tensor t;
    ar.read(key, t);
    if (t.sizes() != dst.sizes())
      throw std::runtime_error("optimizer state: '" + key + "' has " + std::to_string(t.numel()) +
                               " elements, this model " + std::to_string(dst.numel()));
    dst.copy_(t);
  };
  for (size_t i = 0; i < m_.size(); ++i) {
    read("exp_avg." + std::to_string(i), m_[i]);
    read("exp_avg_sq." + std::to_string(i), v_[i]);
  }
  step_ = step.toInt();
}

// A torch::optim::AdamW archive (checkpoints written before the fused optimizer): read into a
// temporary torch optimizer over the same parameters, then copy its per-tensor state into the slices.
void FusedAdamW::load_torch_adamw(torch::serialize::InputArchive& ar) {
  torch::optim::AdamW legacy(flat_.params(), torch::optim::AdamWOptions(h_.lr));
  legacy.load(ar);
  torch::NoGradGuard ng;
  step_ = 0;
  auto& groups = flat_.groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    m_[i].zero_();
    v_[i].zero_();
    for (size_t k = 0; k < groups[i].index.size(); ++k) {
      const auto& p = flat_.params()[groups[i].index[k]];
      auto it = legacy.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it == legacy.state().end()) continue;  // never stepped: zero moments
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      if (s.exp_avg().numel() != p.numel()) throw std::runtime_error("optimizer state: parameter sizes differ");
      m_[i].narrow(0, groups[i].offset[k], p.numel()).copy_(s.exp_avg().reshape({-1}));
      v_[i].narrow(0, groups[i].offset[k], p.numel()).copy_(s.exp_avg_sq().reshape({-1}));
      step_ = std::max(step_, s.step());
    }
  }
}

}  // namespace gsdiff
