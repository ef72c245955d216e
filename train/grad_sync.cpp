// GradSync: bucketed gradient averaging across ranks, launched from backward as buckets fill (train/distributed.h).
#include <torch/csrc/autograd/utils/lambda_post_hook.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include "train/distributed.h"
#include "train/flat_params.h"

namespace gsdiff::dist {

struct GradSync::State {
  struct Slot {
    int64_t bucket = 0, offset = 0, numel = 0;
  };
  struct Bucket {
    torch::Tensor flat;
    std::vector<int64_t> params;  // indices into State::params
    int64_t ready = 0;
    bool launched = false;
    std::unique_ptr<ProcessGroup::Pending> pending;
  };
  std::shared_ptr<ProcessGroup> pg;
  std::vector<torch::Tensor> params;
  std::vector<Slot> slots;
  std::vector<bool> filled;
  std::vector<Bucket> buckets;
  std::vector<unsigned> hook_ids;
  // In-place mode (the FlatParams constructor): buckets are ranges of the flat gradient buffers, readiness
  // comes from post-hooks on the parameters' gradient accumulators, nothing is copied.
  bool in_place = false;
  const FlatParams* flat = nullptr;
  // shared_ptr<Node> in LibTorch 1.13, intrusive_ptr<Node> in 2.13
  std::vector<decltype(torch::autograd::impl::grad_accumulator(std::declval<const torch::Tensor&>()))> accumulators;
  std::vector<uintptr_t> post_keys;
  std::mutex mu;
  bool enabled = true;
  int64_t next_launch = 0;  // buckets are launched in index order on every rank
  int64_t launched_in_backward = 0, launched_in_backward_last = 0;
  double inv_world = 1.0;

  torch::Tensor slot_view(int64_t i) {
    const Slot& s = slots[i];
    return buckets[s.bucket].flat.narrow(0, s.offset, s.numel).view(params[i].sizes());
  }
  // Fills slot i with (accumulated grad so far + new grad) / world. In place: the gradient already sits in
  // its bucket (the accumulator ran), so only its readiness is recorded.
  void fill(int64_t i, const torch::Tensor& incoming) {
    if (in_place) {
      filled[i] = true;
      ++buckets[s_bucket(i)].ready;
      return;
    }
    torch::NoGradGuard ng;
    torch::Tensor v = slot_view(i);
    const torch::Tensor& acc = params[i].grad();
    if (incoming.defined() && acc.defined()) {
      torch::add_out(v, acc, incoming);
      v.mul_(inv_world);
    } else if (incoming.defined()) {
      torch::mul_out(v, incoming, inv_world);
    } else if (acc.defined()) {
      torch::mul_out(v, acc, inv_world);
    } else {
      v.zero_();
    }
    filled[i] = true;
    ++buckets[s_bucket(i)].ready;
  }
  int64_t s_bucket(int64_t i) const { return slots[i].bucket; }
  void launch_ready(bool in_backward) {
    while (next_launch < static_cast<int64_t>(buckets.size())) {
      Bucket& b = buckets[next_launch];
      if (b.ready < static_cast<int64_t>(b.params.size())) break;
      b.pending = pg->allreduce_sum_async(b.flat);
      b.launched = true;
      if (in_backward) ++launched_in_backward;
      ++next_launch;
    }
  }
};

GradSync::GradSync(std::shared_ptr<ProcessGroup> pg, std::vector<torch::Tensor> params, int64_t bucket_bytes,
                   bool overlap)
    : st_(std::make_shared<State>()) {
  TORCH_CHECK(pg, "GradSync: null process group");
  st_->pg = std::move(pg);
  st_->inv_world = 1.0 / st_->pg->world();
  for (auto& p : params)
    if (p.requires_grad()) st_->params.push_back(p);
  const int64_t n = static_cast<int64_t>(st_->params.size());
  st_->slots.resize(n);
  st_->filled.assign(n, false);
  // Reverse registration order: the last layers' gradients arrive first in backward.
  // A bucket holds one dtype/device and at most bucket_bytes (a bigger parameter gets its own).
  std::vector<int64_t> cur;
  int64_t cur_bytes = 0;
  auto close = [&]() {
    if (cur.empty()) return;
    State::Bucket b;
    int64_t off = 0;
    const auto& p0 = st_->params[cur.front()];
    for (int64_t i : cur) {
      st_->slots[i] = {static_cast<int64_t>(st_->buckets.size()), off, st_->params[i].numel()};
      off += st_->params[i].numel();
    }
    b.flat = torch::zeros({off}, p0.options().requires_grad(false));
    b.params = cur;
    st_->buckets.push_back(std::move(b));
    cur.clear();
    cur_bytes = 0;
  };
  for (int64_t i = n - 1; i >= 0; --i) {
    const auto& p = st_->params[i];
    int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    if (!cur.empty()) {
      const auto& q = st_->params[cur.front()];
      if (q.scalar_type() != p.scalar_type() || q.device() != p.device() || cur_bytes + bytes > bucket_bytes) close();
    }
    cur.push_back(i);
    cur_bytes += bytes;
  }
  close();

  if (overlap) {
    std::weak_ptr<State> weak = st_;
    for (int64_t i = 0; i < n; ++i) {
      unsigned id = st_->params[i].register_hook([weak, i](torch::Tensor grad) -> torch::Tensor {
        auto st = weak.lock();
        if (!st) return grad;
        std::lock_guard<std::mutex> lk(st->mu);
        if (!st->enabled || st->filled[i]) return grad;
        st->fill(i, grad);
        st->launch_ready(/*in_backward=*/true);
        return grad;
      });
      st_->hook_ids.push_back(id);
    }
  }
}

// Parameter i's offset in its FlatParams group buffer.
static int64_t flat_offset(const FlatParams& flat, int64_t i) {
  for (const auto& g : flat.groups())
    for (size_t k = 0; k < g.index.size(); ++k)
      if (g.index[k] == i) return g.offset[k];
  TORCH_CHECK(false, "GradSync: parameter ", i, " is in no flat group");
}

GradSync::GradSync(std::shared_ptr<ProcessGroup> pg, FlatParams& flat, int64_t bucket_bytes, bool overlap)
    : st_(std::make_shared<State>()) {
  TORCH_CHECK(pg, "GradSync: null process group");
  TORCH_CHECK(flat.aliased(), "GradSync: the parameters no longer alias the flat buffers; call FlatParams::rebind()");
  State& s = *st_;
  s.pg = std::move(pg);
  s.inv_world = 1.0 / s.pg->world();
  s.in_place = true;
  s.flat = &flat;
  s.params = flat.params();
  const int64_t n = static_cast<int64_t>(s.params.size());
  s.slots.resize(n);
  s.filled.assign(n, false);
  // Per group, members in reverse layout order (last layers first) packed into contiguous ranges of the
  // group's gradient buffer of at most bucket_bytes (a bigger parameter gets its own).
  for (const auto& g : flat.groups()) {
    const int64_t item = static_cast<int64_t>(g.grad.element_size());
    int64_t k = static_cast<int64_t>(g.index.size()) - 1;
    while (k >= 0) {
      const int64_t end = g.offset[k] + s.params[g.index[k]].numel();
      State::Bucket b;
      int64_t begin = g.offset[k];
      for (; k >= 0; --k) {
        const int64_t lo = g.offset[k];
        if (!b.params.empty() && (end - lo) * item > bucket_bytes) break;
        b.params.push_back(g.index[k]);
        begin = lo;
      }
      b.flat = g.grad.narrow(0, begin, end - begin);  // a view: the all-reduce writes the gradients
      int64_t head = 0;  // the group's header slots ride with its first range, launched last (FlatParams::Group)
      if (begin == 0 && g.header.defined()) head = g.header.numel(), b.flat = g.grad_storage.narrow(0, 0, head + end);
      for (int64_t i : b.params)
        s.slots[i] = {static_cast<int64_t>(s.buckets.size()), head + flat_offset(flat, i) - begin, s.params[i].numel()};
      s.buckets.push_back(std::move(b));
    }
  }
  if (overlap) {
    std::weak_ptr<State> weak = st_;
    for (int64_t i = 0; i < n; ++i) {
      auto acc = torch::autograd::impl::grad_accumulator(s.params[i]);
      TORCH_CHECK(acc, "GradSync: parameter ", i, " has no gradient accumulator");
      using VL = std::vector<torch::autograd::Variable>;
      s.post_keys.push_back(acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [weak, i](const VL& outputs, const VL&) -> VL {
            auto st = weak.lock();
            if (!st) return outputs;
            std::lock_guard<std::mutex> lk(st->mu);
            if (!st->enabled || st->filled[i]) return outputs;
            st->fill(i, torch::Tensor());
            st->launch_ready(/*in_backward=*/true);
            return outputs;
          })));
      s.accumulators.push_back(std::move(acc));  // keeps the accumulator (and its hook) alive
    }
  }
}

GradSync::~GradSync() {
  for (size_t i = 0; i < st_->hook_ids.size(); ++i) {
    try {
      st_->params[i].remove_hook(st_->hook_ids[i]);
    } catch (...) {
    }
  }
  for (size_t i = 0; i < st_->post_keys.size(); ++i) st_->accumulators[i]->del_post_hook(st_->post_keys[i]);
}

void GradSync::broadcast_parameters() {
  torch::NoGradGuard ng;
  if (st_->in_place) {  // one collective per flat buffer, written in place
    for (const auto& g : st_->flat->groups()) {
      std::vector<torch::Tensor> data{g.data};
      st_->pg->broadcast(data, 0);
    }
    return;
  }
  for (auto& b : st_->buckets) {
    std::vector<torch::Tensor> parts;
    for (int64_t i : b.params) parts.push_back(st_->params[i].detach().reshape({-1}));
    std::vector<torch::Tensor> flat{torch::cat(parts)};
    st_->pg->broadcast(flat, 0);
    for (int64_t i : b.params)
      st_->params[i].detach().copy_(flat[0].narrow(0, st_->slots[i].offset, st_->slots[i].numel).view(st_->params[i].sizes()));
  }
}

void GradSync::set_enabled(bool on) {
  std::lock_guard<std::mutex> lk(st_->mu);
  st_->enabled = on;
}

void GradSync::finish() {
  std::lock_guard<std::mutex> lk(st_->mu);
  State& s = *st_;
  const int64_t n = static_cast<int64_t>(s.params.size());
  for (int64_t i = 0; i < n; ++i)
    if (!s.filled[i]) s.fill(i, torch::Tensor());
  s.launch_ready(/*in_backward=*/false);
  TORCH_INTERNAL_ASSERT(s.next_launch == static_cast<int64_t>(s.buckets.size()));
  std::exception_ptr err;
  for (auto& b : s.buckets) {
    try {
      if (b.pending) b.pending->wait();
    } catch (...) {
      if (!err) err = std::current_exception();
    }
    b.pending.reset();
  }
  // Reset for the next step before rethrowing, so a caller that catches can still tear down cleanly.
  s.launched_in_backward_last = s.launched_in_backward;
  s.launched_in_backward = 0;
  s.next_launch = 0;
  for (auto& b : s.buckets) {
    b.ready = 0;
    b.launched = false;
  }
  std::fill(s.filled.begin(), s.filled.end(), false);
  if (err) std::rethrow_exception(err);
  torch::NoGradGuard ng;
  if (s.in_place) {  // the sums are the gradients already: scale to the mean
    TORCH_CHECK(s.flat->aliased(), "GradSync: a gradient no longer aliases the flat buffer; call FlatParams::rebind()");
    for (auto& b : s.buckets) b.flat.mul_(s.inv_world);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    torch::Tensor v = s.slot_view(i);
    torch::Tensor& g = s.params[i].mutable_grad();
    if (g.defined())
      g.copy_(v);
    else
      g = v.clone();
  }
}

int64_t GradSync::num_buckets() const { return static_cast<int64_t>(st_->buckets.size()); }
int64_t GradSync::buckets_launched_in_backward() const { return st_->launched_in_backward_last; }

}  // namespace gsdiff::dist
