// c10d process group from the launcher's environment: rendezvous, backend choice, collectives (GradSync: grad_sync.cpp).
#include "train/distributed.h"

#include <c10/util/Logging.h>
#include <torch/version.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(GSDIFF_WITH_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <signal.h>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace gsdiff::dist {

namespace {

// A peer that dies mid-write leaves a broken socket; with SIGPIPE's default action the survivor's next write
// (gloo's pairs write without MSG_NOSIGNAL) kills it silently instead of raising the error that names the dead
// rank. Ignored only where nobody installed a handler of their own.
void ignore_broken_pipes() {
  struct sigaction old {};
  if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
}

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

// c10d logs each failed store read (a dead or stopped store host) at WARNING/ERROR with a C++ backtrace; gsdiff
// reports those failures itself, naming the rank. Unless the user chose a level (TORCH_CPP_LOG_LEVEL), c10's
// WARNING and ERROR lines are kept off stderr (FATAL still shows).
static void quiet_c10d_logs() {
  const char* chosen = std::getenv("TORCH_CPP_LOG_LEVEL");
  if (!chosen || !*chosen) FLAGS_caffe2_log_level = std::max<int>(FLAGS_caffe2_log_level, 3);
}

// LibTorch 1.13's Store::set takes bytes only.
static std::vector<uint8_t> as_bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// A client of the rendezvous store with its own connection (the heartbeat thread and the failure diagnosis
// never share the group's).
static c10::intrusive_ptr<c10d::Store> heartbeat_store(const DistEnv& env, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(env.master_port);
  so.isServer = false;
  so.waitWorkers = false;
  so.timeout = timeout;
  return c10::make_intrusive<c10d::PrefixStore>("gsdiff/heartbeat", c10::make_intrusive<c10d::TCPStore>(env.master_addr, so));
}

struct ProcessGroup::Impl {
  static constexpr std::chrono::milliseconds kBeat{1000};  // heartbeat period
  DistEnv env;
  std::string backend;
  std::chrono::milliseconds timeout{};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<BackendT> pg;
  std::atomic<int64_t> progress{0};
  // The heartbeat's own store connection, made once at start-up (a new connection to a dead or stopped store host
  // would retry, log and wait); the heartbeat thread and the failure diagnosis take turns on it.
  c10::intrusive_ptr<c10d::Store> hb;
  mutable std::mutex hb_store_mu;
  std::thread heartbeat;
  std::mutex hb_mu;
  std::condition_variable hb_cv;
  bool hb_stop = false;

  ~Impl() {
    {
      std::lock_guard<std::mutex> lk(hb_mu);
      hb_stop = true;
    }
    hb_cv.notify_all();
    if (heartbeat.joinable()) heartbeat.join();
  }

  // "<counter> <step>" under key "<rank>", every kBeat, until destruction or the store goes away.
  void start_heartbeat() {
    quiet_c10d_logs();
    hb = heartbeat_store(env, std::chrono::milliseconds(3000));
    const std::string key = std::to_string(env.rank);
    hb->set(key, as_bytes("0 0"));
    heartbeat = std::thread([this, key] {
      std::unique_lock<std::mutex> lk(hb_mu);
      for (int64_t n = 1; !hb_cv.wait_for(lk, kBeat, [this] { return hb_stop; }); ++n) {
        try {
          std::lock_guard<std::mutex> store_lk(hb_store_mu);
          hb->set(key, as_bytes(std::to_string(n) + " " + std::to_string(progress.load())));
        } catch (const std::exception&) {
          return;  // the store's host is gone: the next collective reports it
        }
      }
    });
  }

  // Every peer's heartbeat value ("" when it has none yet).
  std::vector<std::string> read_heartbeats() const {
    std::lock_guard<std::mutex> lk(hb_store_mu);
    std::vector<std::string> v(size_t(env.world));
    for (int r = 0; r < env.world; ++r) {
      if (r == env.rank || !hb->check({std::to_string(r)})) continue;
      auto bytes = hb->get(std::to_string(r));
      v[size_t(r)].assign(bytes.begin(), bytes.end());
    }
    return v;
  }

  // Which peer is at fault: every peer's heartbeat, read twice 1.5 periods apart.
  std::string describe_peers() const {
    std::ostringstream os;
    try {
      const auto before = read_heartbeats();
      std::this_thread::sleep_for(kBeat * 3 / 2);
      const auto after = read_heartbeats();
      const int64_t mine = progress.load();
      for (int r = 0; r < env.world; ++r) {
        if (r == env.rank) continue;
        const auto& b = after[size_t(r)];
        const std::string step = b.empty() ? "?" : b.substr(b.find(' ') + 1);
        if (b.empty())
          os << "rank " << r << " never sent a heartbeat; ";
        else if (b == before[size_t(r)])
          os << "rank " << r << " stopped responding (no heartbeat for " << 1.5 * kBeat.count() / 1000.0
             << " s; the last one reported step " << step << "): it died or hangs; ";
        else if (std::stoll(step) < mine)
          os << "rank " << r << " is alive but behind (in step " << step << ", this rank in step " << mine << "); ";
      }
      if (os.str().empty()) os << "every peer still sends heartbeats (a network fault?); ";
    } catch (const std::exception&) {
      os.str("");
      os << "rank 0, host of the rendezvous store at " << env.master_addr << ":" << env.master_port
         << ", is unreachable: it died or hangs; ";
    }
    return os.str();
  }

  [[noreturn]] void fail(const char* what, const std::exception& e) const {
    std::ostringstream os;
    os << "distributed: " << what << " failed on rank " << env.rank << " of " << env.world << " (" << backend
       << ", timeout " << timeout.count() / 1000.0 << " s): " << describe_peers() << brief(e);
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
  ignore_broken_pipes();
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
  impl->start_heartbeat();
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::world() const { return impl_->env.world; }
const std::string& ProcessGroup::backend() const { return impl_->backend; }
std::chrono::milliseconds ProcessGroup::timeout() const { return impl_->timeout; }
void ProcessGroup::set_progress(int64_t step) { impl_->progress.store(step); }

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

}  // namespace gsdiff::dist
