// Mixed precision: an RAII scope that runs autocast-eligible ops (matmul, conv) in bf16 on one device type.
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace gsdiff {

// Whether autocast is on for the CPU or CUDA now (ops that bypass ATen's dispatcher must then step aside).
inline bool autocast_active() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCPU) || at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled() || at::autocast::is_cpu_enabled();
#endif
}

// bf16 autocast for the scope on CUDA or CPU (the API moved in LibTorch 2.4; both are handled). Only the
// forward pass belongs inside: backward runs each op in the dtype its forward used.
class Bf16Autocast {
 public:
  explicit Bf16Autocast(bool cuda, bool enabled = true) : cuda_(cuda), enabled_(enabled) {
    if (enabled_) set(true);
  }
  ~Bf16Autocast() {
    if (!enabled_) return;
    set(false);
    at::autocast::clear_cache();
  }
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  void set(bool on) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    const auto dev = cuda_ ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_dtype(dev, at::kBFloat16);
    at::autocast::set_autocast_enabled(dev, on);
#else
    if (cuda_) {
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(on);
    } else {
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(on);
    }
#endif
  }
  bool cuda_, enabled_;
};

}  // namespace gsdiff
