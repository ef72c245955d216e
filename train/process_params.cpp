// Adam, data-parallel reduction and checkpoint state of a process's learned parameters.
#include "train/process_params.h"

#include "train/distributed.h"

namespace gsdiff {

ProcessParams::ProcessParams(const Process& p, const torch::Device& device, double beta1, double beta2, double eps) {
  for (auto t : p.learnable_parameters()) {
    if (!t.requires_grad()) continue;
    t.set_data(t.data().to(device));
    params_.push_back(t);
  }
  if (params_.empty()) return;
  adam_ = std::make_unique<torch::optim::Adam>(
      params_, torch::optim::AdamOptions(1e-3).betas({beta1, beta2}).eps(eps).weight_decay(0.0));
}

void ProcessParams::zero_grad() {
  for (auto& t : params_)
    if (t.grad().defined()) t.mutable_grad().zero_();
}

void ProcessParams::reduce(dist::ProcessGroup* group) {
  if (!group || params_.empty()) return;
  std::vector<torch::Tensor> g;
  for (auto& t : params_) {
    if (!t.grad().defined()) t.mutable_grad() = torch::zeros_like(t);
    g.push_back(t.grad().reshape({-1}));
  }
  std::vector<torch::Tensor> flat = {torch::cat(g)};  // one tensor: a collective takes tensors of one size
  group->allreduce_sum(flat);
  flat[0].div_(double(group->world()));
  int64_t at = 0;
  for (auto& t : params_) {
    t.mutable_grad().copy_(flat[0].narrow(0, at, t.numel()).view_as(t));
    at += t.numel();
  }
}

bool ProcessParams::finite() const {
  for (const auto& t : params_)
    if (t.grad().defined() && !torch::isfinite(t.grad()).all().item<bool>()) return false;
  return true;
}

void ProcessParams::step(double lr) {
  if (!adam_) return;
  for (auto& group : adam_->param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
  adam_->step();
}

void ProcessParams::save(torch::serialize::OutputArchive& ar) const {
  if (params_.empty()) return;
  torch::serialize::OutputArchive v, o;
  for (size_t i = 0; i < params_.size(); ++i) v.write("p" + std::to_string(i), params_[i].detach().to(torch::kCPU));
  adam_->save(o);
  ar.write("process_params", v);
  ar.write("process_optimizer", o);
}

void ProcessParams::load(torch::serialize::InputArchive& ar) {
  if (params_.empty()) return;
  torch::serialize::InputArchive v, o;
  ar.read("process_params", v);
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor t;
    v.read("p" + std::to_string(i), t);
    torch::NoGradGuard ng;
    params_[i].copy_(t);
  }
  ar.read("process_optimizer", o);
  adam_->load(o);
}

bool ProcessParams::load_values(const Process& p, torch::serialize::InputArchive& ar, const torch::Device& device) {
  torch::serialize::InputArchive v;
  if (!ar.try_read("process_params", v)) return false;
  size_t i = 0;
  for (auto t : p.learnable_parameters()) {
    if (!t.requires_grad()) continue;
    torch::Tensor saved;
    v.read("p" + std::to_string(i++), saved);
    torch::NoGradGuard ng;
    t.set_data(saved.to(device, t.scalar_type()));
  }
  return true;
}

}  // namespace gsdiff
