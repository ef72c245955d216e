// 2-D convolutions on the CPU through oneDNN with cached primitives: forward, backward-data, backward-weights.
#include "models/onednn_conv.h"

#include <torch/csrc/jit/frontend/tracer.h>

#include <atomic>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "models/autocast.h"
#include "models/cpu_kernels.h"
#include "models/unet_autograd.h"

#ifdef GSDIFF_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace gsdiff {
namespace {
using torch::Tensor;

std::atomic<bool> g_cached_conv{true};
std::atomic<int> g_algorithm{static_cast<int>(ConvAlgorithm::direct)};
std::array<std::atomic<int64_t>, 3> g_counts{}, g_wino{};  // forward, backward-data, backward-weights
[[maybe_unused]] void count(int i, bool wino) {
  g_counts[i].fetch_add(1, std::memory_order_relaxed);
  if (wino) g_wino[i].fetch_add(1, std::memory_order_relaxed);
}

#ifdef GSDIFF_ONEDNN
using dnnl::memory;
using Dims = memory::dims;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}
dnnl::stream& cpu_stream() {
  thread_local dnnl::stream s(cpu_engine());
  return s;
}

memory::desc plain(const Dims& d) {
  return memory::desc(d, memory::data_type::f32, d.size() == 4 ? memory::format_tag::abcd : memory::format_tag::a);
}
memory::desc any(const Dims& d) { return memory::desc(d, memory::data_type::f32, memory::format_tag::any); }

// One tensor argument of a primitive: the user's plain layout, the one the primitive chose, and the reorders
// between them (built only when the two differ).
struct Port {
  memory::desc user, want;
  dnnl::reorder to_want, to_user;
  bool same = true;
  Port() = default;
  Port(const memory::desc& u, const memory::desc& w) : user(u), want(w), same(u == w) {
    if (same) return;
    auto& eng = cpu_engine();
    to_want = dnnl::reorder(dnnl::reorder::primitive_desc(eng, user, eng, want));
    to_user = dnnl::reorder(dnnl::reorder::primitive_desc(eng, want, eng, user));
  }
  // The primitive's memory holding `t`'s values (t itself when the layouts agree; `keep` owns the copy).
  memory in(const Tensor& t, Tensor& keep) const {
    memory um(user, cpu_engine(), t.data_ptr());
    if (same) return um;
    keep = at::empty({int64_t(want.get_size())}, t.options().dtype(at::kByte));
    memory m(want, cpu_engine(), keep.data_ptr());
    to_want.execute(cpu_stream(), {{DNNL_ARG_FROM, um}, {DNNL_ARG_TO, m}});
    return m;
  }
  // Memory for the primitive to write into; `finish` copies it to `t` when the layouts differ.
  memory out(const Tensor& t, Tensor& keep) const {
    if (same) return memory(user, cpu_engine(), t.data_ptr());
    keep = at::empty({int64_t(want.get_size())}, t.options().dtype(at::kByte));
    return memory(want, cpu_engine(), keep.data_ptr());
  }
  void finish(const memory& m, const Tensor& t) const {
    if (same) return;
    memory um(user, cpu_engine(), t.data_ptr());
    to_user.execute(cpu_stream(), {{DNNL_ARG_FROM, m}, {DNNL_ARG_TO, um}});
  }
};

template <class PD>
bool jit(const PD& pd) {
  return std::string(pd.impl_info_str()).rfind("jit", 0) == 0;
}
template <class PD>
bool wino(const PD& pd) {
  return std::string(pd.impl_info_str()).find("wino") != std::string::npos;
}

// The primitive descriptor make(algorithm) for the asked algorithm; direct where oneDNN has no Winograd kernel.
template <class F>
auto with_algorithm(bool winograd, F make) {
  if (winograd) try {
      return make(dnnl::algorithm::convolution_winograd);
    } catch (const dnnl::error&) {
    }
  return make(dnnl::algorithm::convolution_direct);
}

// Shape of one convolution: B, C, H, W, O, k, stride, pad, dilation, bias; then the algorithm (1 = winograd).
using Key = std::array<int64_t, 11>;

struct Plan {
  Dims src, wei, dst, strides, dilates, pads;
  memory::desc bias_md;
  bool bias;
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_forward fwd;
  Port f_src, f_wei, f_dst;
  // Which primitives take the cached path: oneDNN's JIT kernels only. Its reference and GEMM fallbacks are
  // slower than ATen's choice, and oneDNN 2.6's GEMM backward-weights fails to run for dilated convolutions.
  bool fwd_ok = false, bwd_data_ok = false, bwd_weights_ok = false;
  bool winograd = false, fwd_wino = false, bwd_data_wino = false, bwd_weights_wino = false;
  bool have_bwd_data = false, have_bwd_weights = false;
  dnnl::convolution_backward_data bwd_data;
  Port d_dst, d_wei, d_src;  // diff_dst in, weights in, diff_src out
  dnnl::convolution_backward_weights bwd_weights;
  Port w_src, w_dst, w_wei;  // src in, diff_dst in, diff_weights out

  Plan() = default;
  explicit Plan(const Key& k) {
    const int64_t B = k[0], C = k[1], H = k[2], W = k[3], O = k[4], ks = k[5], s = k[6], p = k[7], d = k[8];
    const int64_t Ho = (H + 2 * p - d * (ks - 1) - 1) / s + 1, Wo = (W + 2 * p - d * (ks - 1) - 1) / s + 1;
    src = {B, C, H, W}, wei = {O, C, ks, ks}, dst = {B, O, Ho, Wo};
    strides = {s, s}, dilates = {d - 1, d - 1}, pads = {p, p};  // oneDNN counts dilation from 0
    bias = k[9] != 0;
    winograd = k[10] != 0;
    bias_md = bias ? plain({O}) : memory::desc();
    using namespace dnnl;
    fwd_pd = with_algorithm(winograd, [&](algorithm a) {
      auto fd = bias ? convolution_forward::desc(prop_kind::forward_training, a, any(src), any(wei), bias_md,
                                                 any(dst), strides, dilates, pads, pads)
                     : convolution_forward::desc(prop_kind::forward_training, a, any(src), any(wei), any(dst),
                                                 strides, dilates, pads, pads);
      return convolution_forward::primitive_desc(fd, cpu_engine());
    });
    if (!jit(fwd_pd)) return;
    fwd_wino = wino(fwd_pd);
    fwd = convolution_forward(fwd_pd);
    f_src = Port(plain(src), fwd_pd.src_desc());
    f_wei = Port(plain(wei), fwd_pd.weights_desc());
    f_dst = Port(plain(dst), fwd_pd.dst_desc());
    fwd_ok = jit(fwd_pd);
  }
  // The backward primitives, built on first use (a model that only samples never builds them); a shape oneDNN
  // has no JIT kernel for leaves its flag off and the call to ATen.
  void need_bwd_data() {
    if (have_bwd_data) return;
    have_bwd_data = true;
    using namespace dnnl;
    try {
      auto pd = with_algorithm(winograd, [&](algorithm a) {
        convolution_backward_data::desc bd(a, any(src), any(wei), any(dst), strides, dilates, pads, pads);
        return convolution_backward_data::primitive_desc(bd, cpu_engine(), fwd_pd);
      });
      if (!jit(pd)) return;
      bwd_data_wino = wino(pd);
      bwd_data = convolution_backward_data(pd);
      d_dst = Port(plain(dst), pd.diff_dst_desc());
      d_wei = Port(plain(wei), pd.weights_desc());
      d_src = Port(plain(src), pd.diff_src_desc());
      bwd_data_ok = true;
    } catch (const dnnl::error&) {
    }
  }
  void need_bwd_weights() {
    if (have_bwd_weights) return;
    have_bwd_weights = true;
    using namespace dnnl;
    try {
      auto pd = with_algorithm(winograd, [&](algorithm a) {
        auto bd = bias ? convolution_backward_weights::desc(a, any(src), any(wei), bias_md, any(dst), strides,
                                                            dilates, pads, pads)
                       : convolution_backward_weights::desc(a, any(src), any(wei), any(dst), strides, dilates, pads,
                                                            pads);
        return convolution_backward_weights::primitive_desc(bd, cpu_engine(), fwd_pd);
      });
      if (!jit(pd)) return;
      bwd_weights_wino = wino(pd);
      bwd_weights = convolution_backward_weights(pd);
      w_src = Port(plain(src), pd.src_desc());
      w_dst = Port(plain(dst), pd.diff_dst_desc());
      w_wei = Port(plain(wei), pd.diff_weights_desc());
      bwd_weights_ok = true;
    } catch (const dnnl::error&) {
    }
  }
};

// Plans per thread (a primitive and its library-managed scratchpad are then never run by two threads at once),
// at most kMaxPlans of them: a new shape past that starts the cache afresh.
constexpr size_t kMaxPlans = 256;
Plan& plan_for(const Key& k) {
  thread_local std::map<Key, std::unique_ptr<Plan>> plans;
  auto it = plans.find(k);
  if (it != plans.end()) return *it->second;
  if (plans.size() >= kMaxPlans) plans.clear();
  std::unique_ptr<Plan> p;
  try {
    p = std::make_unique<Plan>(k);
  } catch (const dnnl::error&) {  // no oneDNN primitive for this shape: a plan that sends every call to ATen
    p = std::make_unique<Plan>();
  }
  return *plans.emplace(k, std::move(p)).first->second;
}

Key key_of(const Tensor& x, const Tensor& w, int64_t stride, int64_t pad, int64_t dilation, bool bias) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), stride, pad, dilation, bias ? 1 : 0,
          conv_algorithm() == ConvAlgorithm::winograd ? 1 : 0};
}
#endif

// The cached path takes float32, contiguous NCHW CPU input and weight [O, C, k, k] (groups 1), not while tracing
// (the trace must record aten ops) nor under autocast (which would have run the convolution in bf16).
bool cached_applies(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (!cached_conv_enabled() || torch::jit::tracer::isTracing() || autocast_active()) return false;
  if (!x.is_cpu() || x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat) return false;
  if (b.defined() && (b.scalar_type() != at::kFloat || !b.is_contiguous() || b.dim() != 1)) return false;
  if (x.dim() != 4 || w.dim() != 4 || w.size(1) != x.size(1) || w.size(2) != w.size(3) || x.numel() == 0) return false;
  return x.is_contiguous() && w.is_contiguous() && !x.is_mkldnn();
}

}  // namespace

void set_cached_conv(bool on) { g_cached_conv.store(on, std::memory_order_relaxed); }
void set_conv_algorithm(ConvAlgorithm a) { g_algorithm.store(static_cast<int>(a), std::memory_order_relaxed); }
ConvAlgorithm conv_algorithm() { return static_cast<ConvAlgorithm>(g_algorithm.load(std::memory_order_relaxed)); }
ConvAlgorithm conv_algorithm_named(const std::string& name) {
  if (name == "direct") return ConvAlgorithm::direct;
  if (name == "winograd") return ConvAlgorithm::winograd;
  throw std::invalid_argument("convolution algorithm: direct or winograd, got '" + name + "'");
}
bool cached_conv_built() {
#ifdef GSDIFF_ONEDNN
  return true;
#else
  return false;
#endif
}
std::array<int64_t, 3> cached_conv_counts() {
  return {g_counts[0].load(std::memory_order_relaxed), g_counts[1].load(std::memory_order_relaxed),
          g_counts[2].load(std::memory_order_relaxed)};
}
std::array<int64_t, 3> winograd_conv_counts() {
  return {g_wino[0].load(std::memory_order_relaxed), g_wino[1].load(std::memory_order_relaxed),
          g_wino[2].load(std::memory_order_relaxed)};
}
bool cached_conv_enabled() {
  return cached_conv_built() && cpu_kernels_enabled() && g_cached_conv.load(std::memory_order_relaxed);
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t pad,
                      int64_t dilation) {
#ifdef GSDIFF_ONEDNN
  if (cached_applies(x, w, b)) {
    Plan& pl = plan_for(key_of(x, w, stride, pad, dilation, b.defined()));
    if (pl.fwd_ok) {
      auto y = at::empty(pl.dst, x.options());  // [B, O, H', W']
      Tensor ks, kw, kd;
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, pl.f_src.in(x, ks)},
                                           {DNNL_ARG_WEIGHTS, pl.f_wei.in(w, kw)}};
      auto dm = pl.f_dst.out(y, kd);
      args.emplace(DNNL_ARG_DST, dm);
      if (b.defined()) args.emplace(DNNL_ARG_BIAS, memory(pl.bias_md, cpu_engine(), b.data_ptr()));
      pl.fwd.execute(cpu_stream(), args);
      pl.f_dst.finish(dm, y);
      cpu_stream().wait();
      count(0, pl.fwd_wino);
      return y;
    }
  }
#endif
  return at::conv2d(x, w, b, {stride, stride}, {pad, pad}, {dilation, dilation});
}

std::tuple<Tensor, Tensor, Tensor> conv2d_backward(const Tensor& g_, const Tensor& x, const Tensor& w,
                                                   int64_t stride, int64_t pad, int64_t dilation,
                                                   std::array<bool, 3> mask) {
  Tensor gx, gw, gb;
  bool data_done = !mask[0], weights_done = !(mask[1] || mask[2]);
#ifdef GSDIFF_ONEDNN
  if (cached_applies(x, w, Tensor()) && g_.scalar_type() == at::kFloat) {
    const Tensor g = g_.contiguous();  // [B, O, H', W']
    Plan& pl = plan_for(key_of(x, w, stride, pad, dilation, mask[2]));
    if (mask[0] && pl.fwd_ok) pl.need_bwd_data();
    if (mask[0] && pl.bwd_data_ok) {
      gx = at::empty_like(x);  // [B, C, H, W]
      Tensor kg, kw, kx;
      auto xm = pl.d_src.out(gx, kx);
      pl.bwd_data.execute(cpu_stream(),
                          {{DNNL_ARG_DIFF_DST, pl.d_dst.in(g, kg)}, {DNNL_ARG_WEIGHTS, pl.d_wei.in(w, kw)},
                           {DNNL_ARG_DIFF_SRC, xm}});
      pl.d_src.finish(xm, gx);
      data_done = true;
      count(1, pl.bwd_data_wino);
    }
    if ((mask[1] || mask[2]) && pl.fwd_ok) pl.need_bwd_weights();
    if ((mask[1] || mask[2]) && pl.bwd_weights_ok) {
      gw = at::empty_like(w);  // [O, C, k, k]
      Tensor ks, kg, kw;
      auto wm = pl.w_wei.out(gw, kw);
      std::unordered_map<int, memory> args{
          {DNNL_ARG_SRC, pl.w_src.in(x, ks)}, {DNNL_ARG_DIFF_DST, pl.w_dst.in(g, kg)}, {DNNL_ARG_DIFF_WEIGHTS, wm}};
      if (mask[2]) {
        gb = at::empty({w.size(0)}, w.options());  // [O]
        args.emplace(DNNL_ARG_DIFF_BIAS, memory(pl.bias_md, cpu_engine(), gb.data_ptr()));
      }
      pl.bwd_weights.execute(cpu_stream(), args);
      pl.w_wei.finish(wm, gw);
      if (!mask[1]) gw = Tensor();
      weights_done = true;
      count(2, pl.bwd_weights_wino);
    }
    cpu_stream().wait();
  }
#endif
  if (data_done && weights_done) return {gx, gw, gb};
  // ATen for what the cached path did not take.
  const std::vector<int64_t> bias_sizes{w.size(0)};
  auto [ax, aw, ab] = at::convolution_backward(g_, x, w, bias_sizes, {stride, stride}, {pad, pad},
                                               {dilation, dilation}, false, {0, 0}, 1,
                                               {!data_done, !weights_done && mask[1], !weights_done && mask[2]});
  if (!data_done) gx = ax;
  if (!weights_done) gw = aw, gb = ab;
  return {gx, gw, gb};
}

namespace {
struct ConvNode : torch::autograd::Function<ConvNode> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, Tensor x, Tensor w,
                                                c10::optional<Tensor> b, int64_t stride, int64_t pad,
                                                int64_t dilation) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({x, w});
    ctx->saved_data["s"] = stride;
    ctx->saved_data["p"] = pad;
    ctx->saved_data["d"] = dilation;
    return {conv2d_forward(x, w, b.value_or(Tensor()), stride, pad, dilation)};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    TORCH_CHECK(!torch::GradMode::is_enabled(),
                "conv2d: backward with create_graph=true (double backward) is not supported by gsdiff's cached "
                "oneDNN convolution; call gsdiff::set_block_autograd(false) (models/unet_autograd.h) before the "
                "forward pass");
    const auto s = ctx->get_saved_variables();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [gx, gw, gb] = conv2d_backward(grads[0], s[0], s[1], ctx->saved_data["s"].toInt(),
                                        ctx->saved_data["p"].toInt(), ctx->saved_data["d"].toInt(),
                                        {ctx->needs_input_grad(0), ctx->needs_input_grad(1), ctx->needs_input_grad(2)});
    return {gx, gw, gb, Tensor(), Tensor(), Tensor()};
  }
};
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t pad, int64_t dilation) {
  if (!cached_applies(x, w, b)) return at::conv2d(x, w, b, {stride, stride}, {pad, pad}, {dilation, dilation});
  const bool grad = torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() ||
                                                      (b.defined() && b.requires_grad()));
  if (!grad) return conv2d_forward(x, w, b, stride, pad, dilation);
  // The node's backward is not differentiable: with the single-node blocks off (how a double backward is asked
  // for, models/unet_autograd.h), a recorded convolution stays ATen's.
  if (!block_autograd_enabled()) return at::conv2d(x, w, b, {stride, stride}, {pad, pad}, {dilation, dilation});
  return ConvNode::apply(x, w, b.defined() ? c10::optional<Tensor>(b) : c10::nullopt, stride, pad, dilation)[0];
}

Tensor conv2d(torch::nn::Conv2d& m, const Tensor& x, int64_t pad) {
  const auto& o = m->options;
  const auto stride = *o.stride(), dil = *o.dilation();
  if (o.groups() != 1 || stride[0] != stride[1] || dil[0] != dil[1] ||
      o.padding_mode().index() != 0)  // 0: kZeros
    return m->forward(x);
  return conv2d(x, m->weight, m->bias, stride[0], pad, dil[0]);
}

}  // namespace gsdiff
