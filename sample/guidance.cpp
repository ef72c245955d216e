// Classifier-free guidance, expert switching and network wrappers as DenoiseFn combinators.
#include "sample/guidance.h"

#include <stdexcept>

namespace gsdiff {

using torch::Tensor;

DenoiseFn classifier_free_guidance(DenoiseFn cond, DenoiseFn uncond, double w, Space space) {
  if (space == Space::Continuous)
    return [cond = std::move(cond), uncond = std::move(uncond), w](const Tensor& x, const Tensor& t) {
      return (1.0 + w) * cond(x, t) - w * uncond(x, t);
    };
  return [cond = std::move(cond), uncond = std::move(uncond), w](const Tensor& x, const Tensor& t) {
    auto lc = torch::log_softmax(cond(x, t).to(torch::kFloat64), -1);    // [B, ..., K]
    auto lu = torch::log_softmax(uncond(x, t).to(torch::kFloat64), -1);
    return (1.0 + w) * lc - w * lu;  // unnormalised; read_output renormalises
  };
}

DenoiseFn model_denoise_fn(DenoiserNet model, Tensor y) {
  return [model, y](const Tensor& x, const Tensor& t) mutable {
    auto tt = t.to(torch::kFloat32);
    if (!y.defined()) return model->forward(x, tt);
    if (y.size(0) != x.size(0)) throw std::invalid_argument("model_denoise_fn: labels and batch differ in size");
    return model->forward(x, tt, y.to(x.device()));
  };
}

SelfCondFn model_self_cond_fn(DenoiserNet model, Tensor y) {
  return [model, y](const Tensor& x, const Tensor& t, const Tensor& est) mutable {
    if (y.defined() && y.size(0) != x.size(0)) throw std::invalid_argument("model_self_cond_fn: labels and batch differ in size");
    return model->forward_self_cond(x, t.to(torch::kFloat32), y.defined() ? y.to(x.device()) : y, est);
  };
}

DenoiseFn sampling_denoise_fn(const Process& p, DenoiserNet model, Tensor y) {
  if (!model->self_conditioned()) return model_denoise_fn(model, y);
  return self_condition_feedback(p, model_self_cond_fn(model, y));
}

DenoiseFn guided_model_fn(DenoiserNet model, Tensor y, double w, const Process& p) {
  auto null = torch::full_like(y, model->num_classes());
  return classifier_free_guidance(sampling_denoise_fn(p, model, y), sampling_denoise_fn(p, model, null), w, p.space());
}

DenoiseFn switch_experts(DenoiseFn high, DenoiseFn low, double tau) {
  return [high = std::move(high), low = std::move(low), tau](const Tensor& x, const Tensor& t) {
    auto hi = t > tau;  // [B]
    const int64_t n_hi = hi.sum().item<int64_t>();
    if (n_hi == t.size(0)) return high(x, t);
    if (n_hi == 0) return low(x, t);
    auto ih = hi.nonzero().squeeze(1), il = hi.logical_not().nonzero().squeeze(1);
    auto oh = high(x.index_select(0, ih), t.index_select(0, ih));
    auto ol = low(x.index_select(0, il), t.index_select(0, il));
    std::vector<int64_t> shape = oh.sizes().vec();
    shape[0] = t.size(0);
    auto out = torch::empty(shape, oh.options().dtype(torch::promote_types(oh.scalar_type(), ol.scalar_type())));
    out.index_copy_(0, ih, oh.to(out.scalar_type()));
    out.index_copy_(0, il, ol.to(out.scalar_type()));
    return out;
  };
}

DenoiseFn jit_denoise_fn(std::shared_ptr<torch::jit::Module> module) {
  return [module](const Tensor& x, const Tensor& t) {
    return module->forward({x, t.to(torch::kFloat32)}).toTensor();
  };
}

}  // namespace gsdiff
