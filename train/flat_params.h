// Flat parameter storage: a model's trainable parameters (and their gradients) as views into one contiguous buffer per dtype/device.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace gsdiff {

// After construction every parameter p that requires grad is a view of its group's `data` buffer and
// p.grad() is the view at the same offset of its group's `grad` buffer, so writing data changes the
// module's weights and backward accumulates into grad in place. Whole-model operations (zero_grad,
// global-norm clipping, AdamW, EMA) then take one or a few ops per group instead of ~10 per tensor.
//
// Parameters are grouped by (dtype, device), each group in registration order. Gradients are kept
// defined (zeros after zero_grad), so AccumulateGrad adds in place, as torch does after zero_grad() with
// set_to_none = false. Anything that replaces a parameter's storage (Module::load uses Tensor::set_,
// Module::to to another device) breaks the aliasing: call rebind() afterwards.
class FlatParams {
 public:
  struct Group {
    torch::Tensor data;           // [N] the group's parameters, concatenated
    torch::Tensor grad;           // [N] their gradients, same layout
    std::vector<int64_t> index;   // positions in params() of the members, in layout order
    std::vector<int64_t> offset;  // start of each member in data / grad
    // The last group only, with grad_header > 0: [H + N] memory whose tail is `grad` and whose head is `header`
    // (H spare slots right before the gradients, so that one collective can carry both: train/distributed.h).
    torch::Tensor grad_storage, header;
  };

  // params: e.g. module.parameters(); those without requires_grad are left alone. Values are copied in.
  // grad_header: spare gradient-dtype slots placed directly before the last group's gradient buffer (Group::header);
  // zero_grad, norms, clipping and optimizers never touch them.
  explicit FlatParams(const std::vector<torch::Tensor>& params, int64_t grad_header = 0);

  // Copies each parameter's current values into the buffer and makes it (and its grad) a view again.
  void rebind();
  // True when every parameter and gradient still aliases the buffers (what rebind() restores).
  bool aliased() const;

  void zero_grad();  // one zero_ per group
  // Global L2 norm of all gradients, as torch::nn::utils::clip_grad_norm_: when the coefficient
  // max_norm / (norm + 1e-6) (in the gradients' dtype) is below 1 the gradients are scaled by it.
  // Returns the norm before clipping (non-finite when a gradient is). max_norm = inf never clips.
  double clip_grad_norm(double max_norm);
  // The two halves, for callers that fetch the norm with other values in one host sync (the trainer):
  torch::Tensor grad_norm() const;             // [] on the gradients' device; no sync
  void clip_to(double norm, double max_norm);  // scales as clip_grad_norm would for this norm

  const std::vector<torch::Tensor>& params() const { return params_; }
  std::vector<Group>& groups() { return groups_; }
  const std::vector<Group>& groups() const { return groups_; }
  int64_t numel() const;
  // The last group's header slots ([grad_header]), undefined without them.
  torch::Tensor grad_header() const { return groups_.empty() ? torch::Tensor() : groups_.back().header; }

 private:
  void bind(Group& g, bool copy_values);
  std::vector<torch::Tensor> params_;
  std::vector<Group> groups_;
};

}  // namespace gsdiff
