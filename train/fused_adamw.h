// AdamW over flat parameter buffers: torch::optim::AdamW's update in one pass over the buffers (float32 on
// the CPU) or a handful of whole-buffer ops per step (other dtypes and devices).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "train/flat_params.h"

namespace gsdiff {

struct AdamWHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;  // torch::optim::AdamW defaults
};

// The same update, in the same op order, as LibTorch 1.13's torch::optim::AdamW (decoupled weight decay
// first, then bias-corrected moments), applied to each FlatParams group as a whole:
//   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// One step counter for all parameters (they are always stepped together). Unlike torch's, parameters
// whose gradient is still zero because backward never reached them are stepped too (as with zeroed,
// not None, gradients in PyTorch): the gradient buffer is always defined.
class FusedAdamW {
 public:
  FusedAdamW(FlatParams& flat, AdamWHyper h);
  void step();
  AdamWHyper& options() { return h_; }
  int64_t steps() const { return step_; }
  // Per FlatParams group: [N] first / second moment, laid out like the group's data.
  const std::vector<torch::Tensor>& exp_avg() const { return m_; }
  const std::vector<torch::Tensor>& exp_avg_sq() const { return v_; }

  void save(torch::serialize::OutputArchive& ar) const;
  // Reads save()'s format, or a torch::optim::AdamW archive of the same parameters (older checkpoints).
  // Throws std::runtime_error when the sizes do not match this model's.
  void load(torch::serialize::InputArchive& ar);

 private:
  void load_torch_adamw(torch::serialize::InputArchive& ar);
  FlatParams& flat_;
  AdamWHyper h_;
  int64_t step_ = 0;
  std::vector<torch::Tensor> m_, v_, denom_;  // denom_: scratch for sqrt(v) / sqrt(bc2) + eps
};

// Plain SGD over the flat buffers (torch::optim::SGD without momentum, dampening or Nesterov), per group:
//   g += weight_decay * p;  p -= lr * g
// No state: `train.optimizer = sgd` checkpoints carry none.
void flat_sgd_step(FlatParams& flat, double lr, double weight_decay);

// The key of a parameter in torch::optim::Optimizer::state(): the TensorImpl's address printed as a string
// in LibTorch 1.13, the address itself (void*) in LibTorch 2.
inline auto torch_optim_state_key(const torch::Tensor& p) {
  using Key = std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return static_cast<void*>(p.unsafeGetTensorImpl());
  }
}

}  // namespace gsdiff
