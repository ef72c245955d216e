// 2-D convolutions on the CPU through oneDNN with cached primitives: forward, backward-data, backward-weights.
#pragma once
#include <torch/torch.h>

#include <array>
#include <string>
#include <tuple>

namespace gsdiff {

// y = conv2d(x, w, b) with square stride s, padding p and dilation d (groups 1):
//   y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] x[n, c, s i - p + d u, s j - p + d v]   (zero outside x)
// run on a oneDNN library linked by gsdiff (Debian's libdnnl, found at configure time) with its primitives
// built once per shape and kept (per thread). ATen's own oneDNN path builds the primitive descriptors and the
// layout reorders again on every call, which costs 40-120 us a convolution: at the U-Net sizes of
// bench/configs/unet-micro.json that is most of the train step (bench/results: the "conv" rows).
// The cached path takes float32, contiguous NCHW CPU tensors and a weight [O, C, k, k]; anything else (and
// every call when off, or when gsdiff was built without oneDNN) runs ATen's at::conv2d / convolution_backward.
// Values are those of the same oneDNN kernels ATen picks, up to float summation order (tests/models/onednn_conv_test.cpp).

// Process-wide switch (default on where built). set_cpu_kernels(false) turns it off too.
void set_cached_conv(bool on);
bool cached_conv_enabled();  // on, built with oneDNN, and the CPU kernels switch on
bool cached_conv_built();    // gsdiff was built with a oneDNN of its own (GSDIFF_ONEDNN)

// The cached path's algorithm, process-wide (default direct). direct sums w x as the formula above reads;
// winograd computes the same convolution by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray 2016, "Fast
// Algorithms for Convolutional Neural Networks"): 6x6 input tiles, 2.25x fewer multiplications for 3x3 kernels at
// stride 1, and a larger float32 rounding error (tests/models/onednn_conv_test.cpp bounds it). Where oneDNN has no
// Winograd kernel (other kernel sizes and strides; oneDNN 2.6 has them for AVX-512 CPUs only) a convolution runs
// direct. The first winograd call of each shape builds its primitives afresh.
enum class ConvAlgorithm { direct, winograd };
void set_conv_algorithm(ConvAlgorithm a);
ConvAlgorithm conv_algorithm();
// "direct" | "winograd"; anything else throws std::invalid_argument naming both.
ConvAlgorithm conv_algorithm_named(const std::string& name);

// Primitives run on the cached path since start-up, process-wide: forward, backward-data, backward-weights.
// A shape oneDNN has no JIT kernel for runs on ATen and is not counted.
std::array<int64_t, 3> cached_conv_counts();
// Of those, the ones a Winograd kernel ran.
std::array<int64_t, 3> winograd_conv_counts();

// y = conv2d(x, w, b): [B, C, H, W], [O, C, k, k], [O] or undefined -> [B, O, H', W'] (no autograd recorded).
torch::Tensor conv2d_forward(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, int64_t stride,
                             int64_t pad, int64_t dilation);

// (dL/dx, dL/dw, dL/db) of y = conv2d(x, w, b) given g = dL/dy, where `mask` asks for them (others undefined).
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> conv2d_backward(const torch::Tensor& g, const torch::Tensor& x,
                                                                        const torch::Tensor& w, int64_t stride,
                                                                        int64_t pad, int64_t dilation,
                                                                        std::array<bool, 3> mask);

// y = conv2d(x, w, b) for the U-Net's convs outside the single-node blocks: without grad, conv2d_forward; with
// grad, one autograd node whose backward is conv2d_backward (not differentiable, as the blocks' nodes: with
// set_block_autograd(false) a recorded convolution is ATen's); at::conv2d where the cached path does not apply.
torch::Tensor conv2d(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, int64_t stride,
                     int64_t pad, int64_t dilation = 1);

// m(x) for a torch::nn::Conv2d built with zero padding `pad` (the U-Net's convs), through conv2d above; a conv
// with groups, unequal strides or another padding mode runs m->forward(x).
torch::Tensor conv2d(torch::nn::Conv2d& m, const torch::Tensor& x, int64_t pad);

}  // namespace gsdiff
