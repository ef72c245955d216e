// Flat parameter storage: parameters and gradients re-pointed at views of one buffer per dtype/device.
#include "train/flat_params.h"

#include <cmath>
#include <limits>

namespace gsdiff {

FlatParams::FlatParams(const std::vector<torch::Tensor>& params, int64_t grad_header) {
  for (const auto& p : params)
    if (p.requires_grad()) params_.push_back(p);
  for (int64_t i = 0; i < static_cast<int64_t>(params_.size()); ++i) {
    const auto& p = params_[i];
    Group* g = nullptr;
    for (auto& h : groups_) {
      const auto& q = params_[h.index.front()];
      if (q.scalar_type() == p.scalar_type() && q.device() == p.device()) g = &h;
    }
    if (!g) g = &groups_.emplace_back();
    g->offset.push_back(g->index.empty() ? 0 : g->offset.back() + params_[g->index.back()].numel());
    g->index.push_back(i);
  }
  for (auto& g : groups_) {
    const auto& last = params_[g.index.back()];
    const int64_t n = g.offset.back() + last.numel();
    auto opts = torch::TensorOptions().dtype(last.scalar_type()).device(last.device());
    g.data = torch::empty({n}, opts);  // [N]
    const int64_t h = &g == &groups_.back() ? grad_header : 0;
    if (h > 0) {
      g.grad_storage = torch::zeros({h + n}, opts);  // [H + N]
      g.header = g.grad_storage.narrow(0, 0, h);      // [H]
      g.grad = g.grad_storage.narrow(0, h, n);        // [N]
    } else {
      g.grad = torch::zeros({n}, opts);  // [N]
    }
    bind(g, /*copy_values=*/true);
  }
}

void FlatParams::bind(Group& g, bool copy_values) {
  torch::NoGradGuard ng;
  for (size_t k = 0; k < g.index.size(); ++k) {
    auto& p = params_[g.index[k]];
    const int64_t n = p.numel();
    auto value = g.data.narrow(0, g.offset[k], n).view(p.sizes());
    if (copy_values && value.data_ptr() != p.data_ptr()) value.copy_(p.detach());
    p.set_data(value);
    auto grad = g.grad.narrow(0, g.offset[k], n).view(p.sizes());
    const auto& old = p.grad();
    if (old.defined() && old.data_ptr() != grad.data_ptr()) grad.copy_(old);
    else if (!old.defined()) grad.zero_();
    p.mutable_grad() = grad;
  }
}

void FlatParams::rebind() {
  for (auto& g : groups_) bind(g, /*copy_values=*/true);
}

bool FlatParams::aliased() const {
  for (const auto& g : groups_) {
    const auto item = static_cast<int64_t>(g.data.element_size());
    for (size_t k = 0; k < g.index.size(); ++k) {
      const auto& p = params_[g.index[k]];
      auto* want = static_cast<char*>(g.data.data_ptr()) + g.offset[k] * item;
      auto* want_grad = static_cast<char*>(g.grad.data_ptr()) + g.offset[k] * item;
      if (p.data_ptr() != want || !p.is_contiguous()) return false;
      if (!p.grad().defined() || p.grad().data_ptr() != want_grad || !p.grad().is_contiguous()) return false;
    }
  }
  return true;
}

void FlatParams::zero_grad() {
  for (auto& g : groups_) g.grad.zero_();
}

int64_t FlatParams::numel() const {
  int64_t n = 0;
  for (const auto& g : groups_) n += g.data.numel();
  return n;
}

torch::Tensor FlatParams::grad_norm() const {
  torch::NoGradGuard ng;
  if (groups_.empty()) return torch::zeros({}, torch::kFloat64);
  // One norm per group (torch: one per tensor, then the norm of those norms: equal up to rounding).
  if (groups_.size() == 1) return groups_[0].grad.norm();  // [] in the gradients' dtype, on their device
  std::vector<torch::Tensor> norms;
  for (const auto& g : groups_) norms.push_back(g.grad.norm().to(torch::kCPU, torch::kFloat64));
  return torch::stack(norms).norm();
}

void FlatParams::clip_to(double norm, double max_norm) {
  torch::NoGradGuard ng;
  if (groups_.empty()) return;
  // clip_grad_norm_'s coefficient clamp(max_norm / (norm + 1e-6), max = 1), evaluated in the norm's dtype
  // as torch does; scaling by 1 is skipped (exact), NaN propagates into the gradients as in torch.
  const bool in_float = groups_.size() == 1 && groups_[0].grad.scalar_type() != torch::kFloat64;
  double coef;
  if (!in_float) {
    coef = max_norm / (norm + 1e-6);
  } else {
    const float n = static_cast<float>(norm);
    coef = static_cast<double>(static_cast<float>(max_norm) / (n + 1e-6f));
  }
  if (!(coef >= 1.0))
    for (auto& g : groups_) g.grad.mul_(coef);
}

double FlatParams::clip_grad_norm(double max_norm) {
  if (groups_.empty()) return 0.0;
  const double norm = grad_norm().item<double>();  // a host sync
  clip_to(norm, max_norm);
  return norm;
}

}  // namespace gsdiff
