// ResBlock and AttnBlock as single autograd nodes: forward without graph recording, backward written out.
#include "models/unet_autograd.h"

#include <ATen/autocast_mode.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/version.h>

#include <atomic>
#include <cmath>

#include "models/autocast.h"
#include "models/cpu_kernels.h"
#include "models/onednn_conv.h"
#include "models/unet_blocks.h"

namespace gsdiff {
namespace {
using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The nodes' backward is not itself differentiable: refuse create_graph rather than return a gradient
// that silently carries no graph (a gradient penalty, say, needs set_block_autograd(false)).
void check_no_double_backward(const char* node) {
  TORCH_CHECK(!torch::GradMode::is_enabled(), node,
              ": backward with create_graph=true (double backward) is not supported by the single-node U-Net "
              "blocks; call gsdiff::set_block_autograd(false) (models/unet_autograd.h) before the forward pass");
}

std::atomic<bool> g_block_autograd{true};

// What at::group_norm hands to native_group_norm (and what its autograd node saves): the input in its
// suggested memory format on CPU, plain contiguous elsewhere.
Tensor group_norm_input(const Tensor& x) {
  return x.is_cpu() ? x.contiguous(x.suggest_memory_format()) : x.contiguous();
}

int64_t spatial(const Tensor& x) { return x.numel() / (x.size(0) * x.size(1)); }

// (y, mean, rstd) = GroupNorm(X) with mean/rstd per (sample, group): [B, G] (Wu & He 2018).
std::tuple<Tensor, Tensor, Tensor> gn_forward(const Tensor& X, const Tensor& w, const Tensor& b, int64_t groups,
                                              double eps) {
  return at::native_group_norm(X, w, b, X.size(0), X.size(1), spatial(X), groups, eps);
}

std::tuple<Tensor, Tensor, Tensor> gn_backward(const Tensor& g, const Tensor& X, const Tensor& mean,
                                               const Tensor& rstd, const Tensor& w, int64_t groups,
                                               std::array<bool, 3> mask) {
  return at::native_group_norm_backward(g, X, mean, rstd, w, X.size(0), X.size(1), spatial(X), groups, mask);
}

// a = silu(GroupNorm(X)): the fused kernel (models/cpu_kernels.h) where it applies, else ATen's two ops,
// and then n = GroupNorm(X) is kept for silu_backward.
struct GnSilu {
  Tensor a, mean, rstd, n;
};
GnSilu gn_silu_forward(const Tensor& X, const Tensor& w, const Tensor& b, int64_t groups, double eps) {
  if (group_norm_silu_fusable(X, w)) {
    auto [a, mean, rstd] = group_norm_silu_forward(X, w, b, groups, eps);
    return {a, mean, rstd, Tensor()};
  }
  auto [n, mean, rstd] = gn_forward(X, w, b, groups, eps);
  return {at::silu(n), mean, rstd, n};
}

std::tuple<Tensor, Tensor, Tensor> gn_silu_backward(const Tensor& ga, const Tensor& X, const Tensor& mean,
                                                    const Tensor& rstd, const Tensor& n, const Tensor& w,
                                                    const Tensor& b, int64_t groups, std::array<bool, 3> mask) {
  if (!n.defined()) return group_norm_silu_backward(ga, X, mean, rstd, w, b, groups, mask);
  return gn_backward(at::silu_backward(ga, n), X, mean, rstd, w, groups, mask);
}

// Gradients of y = conv2d(in, w, b) (stride 1, square padding and dilation) w.r.t. (in, w, b) where `mask`
// asks for them: gsdiff's cached oneDNN convolutions where they apply, else ATen's (models/onednn_conv.h).
std::tuple<Tensor, Tensor, Tensor> conv_backward(const Tensor& g, const Tensor& in, const Tensor& w, int64_t pad,
                                                 std::array<bool, 3> mask, int64_t dilation = 1) {
  return conv2d_backward(g, in, w, 1, pad, dilation, mask);
}

// The dilation to run a 1x1 convolution of `x` with `w` at (the ResBlock shortcut, attention's qkv and
// output projections). On the CPU, for a 1x1 kernel at batch < 16 on one thread, ATen takes its THNN path
// (GEMMs on the BLAS); oneDNN's kernels took 0.54-0.8x of its time, forward plus backward, from 4M
// multiply-adds up, and 1.2-3x below that (bench/results/epyc-2vcpu-shared-2026-12-01-block-autograd.json,
// "conv_1x1_microbenchmark"). A 1x1 kernel reads
// no neighbours, so its dilation changes nothing but ATen's choice of kernels: 2 selects oneDNN.
int64_t dilation_1x1(const Tensor& x, const Tensor& w) {
  if (cached_conv_enabled()) return 1;  // the cached oneDNN path: no choice of ATen's to steer
  if (!x.is_cpu() || x.scalar_type() != at::kFloat || !at::hasMKLDNN() || !at::globalContext().userEnabledMkldnn())
    return 1;
  const double macs = double(x.numel()) * double(w.size(0));  // B * Ci * H * W * Co
  return macs >= 4.0e6 ? 2 : 1;
}

Tensor conv1x1(const Tensor& x, const Tensor& w, const c10::optional<Tensor>& b) {
  return conv2d_forward(x, w, b.value_or(Tensor()), 1, 0, dilation_1x1(x, w));
}

// Tensor inputs, in order: x, proj, norm1 (w, b), conv1 (w, b), norm2 (w, b), conv2 (w, b), skip (w, b);
// the skip pair is absent (no input, no edge) without a 1x1 shortcut.
enum ResIn { kX, kProj, kN1w, kN1b, kC1w, kC1b, kN2w, kN2b, kC2w, kC2b, kSkw, kSkb, kResInputs };

struct ResBlockNode : torch::autograd::Function<ResBlockNode> {
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor proj, Tensor n1w, Tensor n1b, Tensor c1w,
                               Tensor c1b, Tensor n2w, Tensor n2b, Tensor c2w, Tensor c2b,
                               c10::optional<Tensor> skw_, c10::optional<Tensor> skb, int64_t groups1, double eps1,
                               int64_t groups2, double eps2, double p) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;  // nothing is recorded in here: skip those layers
    const int64_t Co = c1w.size(0);
    const Tensor skw = skw_.value_or(Tensor());
    auto X = group_norm_input(x);                                               // [B, Ci, H, W]
    auto [a1, mean1, rstd1, n1] = gn_silu_forward(X, n1w, n1b, groups1, eps1);  // a1 = silu(GroupNorm(x))
    auto h1 = conv2d_forward(a1, c1w, c1b, 1, 1, 1);  // [B, Co, H, W]
    h1.add_(proj.view({-1, Co, 1, 1}));                  // + Dense(temb) [B, Co, 1, 1]
    auto H1 = group_norm_input(h1);
    auto [a2, mean2, rstd2, n2] = gn_silu_forward(H1, n2w, n2b, groups2, eps2);
    // d = dropout(a2); noise: the keep bits (CPU kernel), the scaled mask (CPU) or the kept mask (CUDA)
    Tensor d = a2, noise;
    if (p > 0) {
      if (dropout_fusable(a2)) {
        std::tie(d, noise) = dropout_forward(a2, p, draw_dropout_seed());
      } else if (a2.is_cpu()) {  // as at::dropout on CPU: a2 * (bernoulli(1 - p) / (1 - p))
        noise = at::empty_like(a2, at::MemoryFormat::Contiguous).bernoulli_(1 - p);
        noise.div_(1 - p);
        d = a2 * noise;
      } else {  // as at::dropout on CUDA: the fused kernel
        std::tie(d, noise) = at::native_dropout(a2, p, true);
      }
    }
    auto h2 = conv2d_forward(d, c2w, c2b, 1, 1, 1);  // [B, Co, H, W]
    auto out = at::add(skw.defined() ? conv1x1(x, skw, skb) : x, h2);
    ctx->save_for_backward(
        {x, X, mean1, rstd1, n1, a1, H1, mean2, rstd2, n2, noise, d, n1w, c1w, n2w, c2w, skw, n1b, n2b});
    ctx->saved_data["g1"] = groups1;
    ctx->saved_data["g2"] = groups2;
    ctx->saved_data["p"] = p;
    return {out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    check_no_double_backward("ResBlock");
    const auto s = ctx->get_saved_variables();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const auto &x = s[0], &X = s[1], &mean1 = s[2], &rstd1 = s[3], &n1 = s[4], &a1 = s[5], &H1 = s[6],
               &mean2 = s[7], &rstd2 = s[8], &n2 = s[9], &noise = s[10], &d = s[11], &n1w = s[12], &c1w = s[13],
               &n2w = s[14], &c2w = s[15], &skw = s[16], &n1b = s[17], &n2b = s[18];
    const int64_t groups1 = ctx->saved_data["g1"].toInt(), groups2 = ctx->saved_data["g2"].toInt();
    const double p = ctx->saved_data["p"].toDouble();
    auto need = [&](int i) { return ctx->needs_input_grad(i); };
    const Tensor& g = grads[0];  // dL/dout [B, Co, H, W]
    variable_list out(kResInputs + 5);

    // out = shortcut(x) + h2
    Tensor gx_short = g;
    if (skw.defined())
      std::tie(gx_short, out[kSkw], out[kSkb]) =
          conv_backward(g, x, skw, 0, {need(kX), need(kSkw), need(kSkb)}, dilation_1x1(x, skw));
    // h2 = conv2(d), d = dropout(a2), a2 = silu(GroupNorm(h1))
    auto [gd, gc2w, gc2b] = conv_backward(g, d, c2w, 1, {true, need(kC2w), need(kC2b)});
    out[kC2w] = gc2w;
    out[kC2b] = gc2b;
    Tensor ga2 = gd;
    if (p > 0) {
      if (noise.scalar_type() == at::kByte) ga2 = dropout_backward(gd, noise, p);
      else if (noise.scalar_type() == at::kBool) ga2 = at::native_dropout_backward(gd, noise, 1.0 / (1.0 - p));
      else ga2 = gd * noise;
    }
    auto [gh1, gn2w, gn2b] =
        gn_silu_backward(ga2, H1, mean2, rstd2, n2, n2w, n2b, groups2, {true, need(kN2w), need(kN2b)});
    out[kN2w] = gn2w;
    out[kN2b] = gn2b;
    // h1 = conv1(a1) + proj[:, :, None, None]
    if (need(kProj)) out[kProj] = gh1.sum({2, 3});  // [B, Co]
    const bool need_a1 = need(kX) || need(kN1w) || need(kN1b);
    auto [ga1, gc1w, gc1b] = conv_backward(gh1, a1, c1w, 1, {need_a1, need(kC1w), need(kC1b)});
    out[kC1w] = gc1w;
    out[kC1b] = gc1b;
    // a1 = silu(GroupNorm(x))
    if (need_a1) {
      Tensor gx;
      std::tie(gx, out[kN1w], out[kN1b]) =
          gn_silu_backward(ga1, X, mean1, rstd1, n1, n1w, n1b, groups1, {need(kX), need(kN1w), need(kN1b)});
      if (need(kX)) out[kX] = gx.add_(gx_short);  // gx is ours: no new buffer
    }
    return out;
  }
};

#if TORCH_VERSION_MAJOR < 2
// Tensor inputs: x, norm (w, b), qkv (w, b), proj (w, b).
enum AttnIn { kAx, kNw, kNb, kQw, kQb, kPw, kPb, kAttnInputs };

// out = x + proj(o), o = v softmax_keys(k^T q / sqrt(Dh)), [q; k; v] = qkv(GroupNorm(x)), per head, on the
// channels-first layout of AttnBlockImpl::forward (Vaswani et al. 2017; DDPM's AttnBlock).
struct AttnBlockNode : torch::autograd::Function<AttnBlockNode> {
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor nw, Tensor nb, Tensor qw, Tensor qb,
                               Tensor pw, Tensor pb, int64_t groups, double eps, int64_t heads) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto X = group_norm_input(x);
    auto [n, mean, rstd] = gn_forward(X, nw, nb, groups, eps);
    auto parts = conv1x1(n, qw, qb).flatten(2).chunk(3, 1);  // q, k, v: [B, C, N]
    auto heads_first = [&](const Tensor& a) {                  // [B, C, N] -> [B*heads, Dh, N]
      return heads == 1 ? a : a.unflatten(1, {heads, -1}).flatten(0, 1);
    };
    auto q = heads_first(parts[0]), k = heads_first(parts[1]), v = heads_first(parts[2]);
    const double scale = 1.0 / std::sqrt(double(q.size(1)));
    auto qs = q * scale;
    auto wt = at::softmax(at::bmm(k.transpose(1, 2), qs), 1);  // [B*heads, N keys, N queries]
    auto o = at::bmm(v, wt).view_as(x);                          // [B*heads, Dh, N] -> [B, C, H, W]
    auto out = at::add(x, conv1x1(o, pw, pb));
    ctx->save_for_backward({X, mean, rstd, n, k, v, qs, wt, o, nw, qw, pw});
    ctx->saved_data["g"] = groups;
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["scale"] = scale;
    return {out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    check_no_double_backward("AttnBlock");
    const auto s = ctx->get_saved_variables();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const auto &X = s[0], &mean = s[1], &rstd = s[2], &n = s[3], &k = s[4], &v = s[5], &qs = s[6], &wt = s[7],
               &o = s[8], &nw = s[9], &qw = s[10], &pw = s[11];
    const int64_t groups = ctx->saved_data["g"].toInt(), heads = ctx->saved_data["heads"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble();
    auto need = [&](int i) { return ctx->needs_input_grad(i); };
    const Tensor& g = grads[0];  // [B, C, H, W]
    variable_list out(kAttnInputs + 3);
    const int64_t B = X.size(0), C = X.size(1), N = spatial(X);

    auto [go, gpw, gpb] = conv_backward(g, o, pw, 0, {true, need(kPw), need(kPb)}, dilation_1x1(o, pw));
    out[kPw] = gpw;
    out[kPb] = gpb;
    auto go3 = go.reshape({B * heads, C / heads, N});  // [B*heads, Dh, N]
    // o = bmm(v, wt)
    auto gv = go3.bmm(wt.transpose(1, 2));
    auto gs = at::_softmax_backward_data(v.transpose(1, 2).bmm(go3), wt, 1, wt.scalar_type());  // [B*heads, N, N]
    // wt_pre = bmm(k^T, qs), qs = q * scale
    auto gk = gs.bmm(qs.transpose(1, 2)).transpose(1, 2);  // [B*heads, Dh, N] (a view)
    auto gq = k.bmm(gs) * scale;
    auto merged = [&](const Tensor& t) { return heads == 1 ? t : t.reshape({B, C, N}); };
    auto gqkv = at::cat({merged(gq), merged(gk), merged(gv)}, 1).view({B, 3 * C, X.size(2), X.size(3)});
    const bool need_n = need(kAx) || need(kNw) || need(kNb);
    auto [gn, gqw, gqb] = conv_backward(gqkv, n, qw, 0, {need_n, need(kQw), need(kQb)}, dilation_1x1(n, qw));
    out[kQw] = gqw;
    out[kQb] = gqb;
    if (need_n) {
      Tensor gx;
      std::tie(gx, out[kNw], out[kNb]) = gn_backward(gn, X, mean, rstd, nw, groups, {need(kAx), need(kNw), need(kNb)});
      if (need(kAx)) out[kAx] = gx.add_(g);
    }
    return out;
  }
};
#endif

}  // namespace

void set_block_autograd(bool on) { g_block_autograd.store(on, std::memory_order_relaxed); }
bool block_autograd_enabled() { return g_block_autograd.load(std::memory_order_relaxed); }

bool use_block_autograd(const torch::Tensor& x, const torch::Tensor& weight) {
  if (!block_autograd_enabled() || !torch::GradMode::is_enabled()) return false;
  if (x.numel() == 0 || x.dim() != 4 || x.scalar_type() != weight.scalar_type()) return false;
  if (!(x.requires_grad() || weight.requires_grad())) return false;
  return !autocast_active() && !torch::jit::tracer::isTracing();
}

torch::Tensor resblock_single_node(ResBlockImpl& b, const torch::Tensor& x, const torch::Tensor& proj) {
  const c10::optional<Tensor> none;
  const double p = b.dropout->is_training() ? b.dropout->options.p() : 0.0;
  return ResBlockNode::apply(x, proj, b.norm1->weight, b.norm1->bias, b.conv1->weight, b.conv1->bias,
                             b.norm2->weight, b.norm2->bias, b.conv2->weight, b.conv2->bias,
                             b.skip ? c10::optional<Tensor>(b.skip->weight) : none,
                             b.skip ? c10::optional<Tensor>(b.skip->bias) : none,
                             b.norm1->options.num_groups(), b.norm1->options.eps(), b.norm2->options.num_groups(),
                             b.norm2->options.eps(), p)[0];
}

torch::Tensor attnblock_single_node(AttnBlockImpl& a, const torch::Tensor& x) {
#if TORCH_VERSION_MAJOR < 2
  return AttnBlockNode::apply(x, a.norm->weight, a.norm->bias, a.qkv->weight, a.qkv->bias, a.proj->weight,
                              a.proj->bias, a.norm->options.num_groups(), a.norm->options.eps(), a.heads)[0];
#else
  TORCH_CHECK(false, "attnblock_single_node: LibTorch >= 2 uses the fused attention kernel instead");
#endif
}

}  // namespace gsdiff
