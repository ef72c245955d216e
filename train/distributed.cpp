// c10d process group from the launcher's environment and bucketed, backward-overlapped gradient averaging.
#include "train/distributed.h"

#include "train/flat_params.h"

#include <torch/version.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#if defined(GSDIFF_WITH_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace gsdiff::dist {

namespace {

// LibTorch 2.x splits ProcessGroup (a dispatcher) from Backend (Gloo, NCCL); 1.13 has only ProcessGroup.
#if TORCH_VERSION_MAJOR >= 2
using BackendT = c10d::Backend;
#else
using BackendT = c10d::ProcessGroup;
#endif

const char* getenv_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : fallback;
}

long parse_env_int(const char* name, const char* text, long lo, long hi) {
  errno = 0;
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (errno || end == text || *end != '\0' || v < lo || v > hi) {
    std::ostringstream os;
    os << "environment variable " << name << "='" << text << "' is not an integer in [" << lo << ", " << hi << "]";
    throw std::runtime_error(os.str());
  }
  return v;
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

}  // namespace

DistEnv env_from_environment() {
  DistEnv e;
  const char* ws = std::getenv("WORLD_SIZE");
  if (!ws || !*ws) return e;
  e.from_env = true;
  e.world = static_cast<int>(parse_env_int("WORLD_SIZE", ws, 1, 1 << 20));
  e.rank = static_cast<int>(parse_env_int("RANK", getenv_or("RANK", "0"), 0, e.world - 1));
  e.local_rank = static_cast<int>(parse_env_int("LOCAL_RANK", getenv_or("LOCAL_RANK", std::to_string(e.rank).c_str()), 0, 1 << 20));
  e.master_addr = getenv_or("MASTER_ADDR", "127.0.0.1");
  e.master_port = static_cast<int>(parse_env_int("MASTER_PORT", getenv_or("MASTER_PORT", "29500"), 1, 65535));
  return e;
}

// The message without LibTorch's C++ backtrace (c10::Error appends one to what()).
static std::string brief(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

struct ProcessGroup::Impl {
  DistEnv env;
  std::string backend;
  std::chrono::milliseconds timeout{};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<BackendT> pg;

  [[noreturn]] void fail(const char* what, const std::exception& e) const {
    std::ostringstream os;
    os << "distributed: " << what << " failed on rank " << env.rank << " of " << env.world << " (" << backend
       << ", timeout " << timeout.count() / 1000.0 << " s): a peer process exited, disconnected or is stuck: "
       << brief(e);
    throw std::runtime_error(os.str());
  }
  void wait(const c10::intrusive_ptr<c10d::Work>& w, const char* what) const {
    try {
      w->wait(timeout);
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

std::shared_ptr<ProcessGroup> ProcessGroup::create(const DistEnv& env, const DistOptions& opt) {
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  impl->timeout = opt.timeout;
  std::string backend = opt.backend;
  if (backend == "auto") backend = opt.device.is_cuda() ? "nccl" : "gloo";
  if (backend != "gloo" && backend != "nccl")
    throw std::runtime_error("distributed: unknown backend '" + backend + "' (auto | gloo | nccl)");
  impl->backend = backend;

  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = static_cast<std::size_t>(env.world);
  so.waitWorkers = true;
  so.timeout = opt.timeout;
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    impl->store = c10::make_intrusive<c10d::PrefixStore>("gsdiff/" + backend, tcp);
  } catch (const std::exception& e) {
    std::ostringstream os;
    os << "distributed: rendezvous at " << env.master_addr << ":" << env.master_port << " failed on rank " << env.rank
       << " of " << env.world << " (MASTER_ADDR/MASTER_PORT reachable? all ranks started?): " << brief(e);
    throw std::runtime_error(os.str());
  }

  try {
    if (backend == "gloo") {
      auto o = c10d::ProcessGroupGloo::Options::create(opt.timeout);
      // GLOO_SOCKET_IFNAME picks the interface as in PyTorch; a loopback master means a local job.
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (is_loopback(env.master_addr))
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world, o);
    } else {
#if defined(GSDIFF_WITH_NCCL)
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = opt.timeout;
      impl->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, env.rank, env.world, o);
#else
      throw std::runtime_error("this build has no NCCL support (GSDIFF_WITH_NCCL); use --backend gloo");
#endif
    }
  } catch (const std::exception& e) {
    std::ostringstream os;
    os << "distributed: creating the " << backend << " process group failed on rank " << env.rank << " of "
       << env.world << " (all ranks started? same MASTER_PORT?): " << brief(e);
    throw std::runtime_error(os.str());
  }
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::world() const { return impl_->env.world; }
const std::string& ProcessGroup::backend() const { return impl_->backend; }
std::chrono::milliseconds ProcessGroup::timeout() const { return impl_->timeout; }

void ProcessGroup::allreduce_sum(std::vector<torch::Tensor>& tensors) {
  c10::intrusive_ptr<c10d::Work> w;
  try {
    w = impl_->pg->allreduce(tensors);
  } catch (const std::exception& e) {
    impl_->fail("all-reduce", e);
  }
  impl_->wait(w, "all-reduce");
}

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
  c10::intrusive_ptr<c10d::Work> w;
  try {
    w = impl_->pg->broadcast(tensors, o);
  } catch (const std::exception& e) {
    impl_->fail("broadcast", e);
  }
  impl_->wait(w, "broadcast");
}

void ProcessGroup::barrier() {
  c10::intrusive_ptr<c10d::Work> w;
  try {
    w = impl_->pg->barrier();
  } catch (const std::exception& e) {
    impl_->fail("barrier", e);
  }
  impl_->wait(w, "barrier");
}

namespace {
class PendingWork : public ProcessGroup::Pending {
 public:
  PendingWork(const ProcessGroup::Impl* impl, c10::intrusive_ptr<c10d::Work> w, std::vector<torch::Tensor> keep)
      : impl_(impl), w_(std::move(w)), keep_(std::move(keep)) {}
  void wait() override { impl_->wait(w_, "all-reduce"); }

 private:
  const ProcessGroup::Impl* impl_;
  c10::intrusive_ptr<c10d::Work> w_;
  std::vector<torch::Tensor> keep_;
};
}  // namespace

std::unique_ptr<ProcessGroup::Pending> ProcessGroup::allreduce_sum_async(torch::Tensor flat) {
  std::vector<torch::Tensor> v{std::move(flat)};
  c10::intrusive_ptr<c10d::Work> w;
  try {
    w = impl_->pg->allreduce(v);
  } catch (const std::exception& e) {
    impl_->fail("all-reduce", e);
  }
  return std::make_unique<PendingWork>(impl_.get(), std::move(w), std::move(v));
}

std::shared_ptr<ProcessGroup> init_from_env(const DistOptions& opt) {
  DistEnv env = env_from_environment();
  if (env.world <= 1) return nullptr;
  return ProcessGroup::create(env, opt);
}

// ---------------------------------------------------------------------------------------------
// GradSync

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
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
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
      for (int64_t i : b.params)
        s.slots[i] = {static_cast<int64_t>(s.buckets.size()), flat_offset(flat, i) - begin, s.params[i].numel()};
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
