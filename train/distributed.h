// Data-parallel training over c10d: rendezvous from the launcher's environment (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT) through a TCPStore, a Gloo (CPU) or NCCL (CUDA) process
// group, and bucketed gradient averaging that overlaps the backward pass.
//
// Gradient synchronisation (GradSync) does its own bucketing rather than driving c10d::Reducer:
// parameters are packed, in reverse registration order (roughly the order backward produces their
// gradients), into flat buckets of at most `bucket_bytes`. A tensor hook on each parameter copies its
// gradient (plus any gradient already accumulated from earlier micro-batches) into its bucket slot,
// pre-divided by the world size; when a bucket is full it is all-reduced asynchronously while
// backward goes on. Buckets are launched strictly in index order so every rank issues the same
// collective sequence. finish() launches what the hooks did not (parameters unused this step, or
// overlap off), waits, and writes the averaged gradients into param.grad(). Call it after the last
// backward of an optimizer step and before gradient clipping. For parameters in flat buffers (the trainer)
// the in-place constructor skips both copies: buckets are ranges of the flat gradient buffer itself.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gsdiff {
class FlatParams;
}

namespace gsdiff::dist {

// What the launcher says about this process. world == 1 means "not distributed".
struct DistEnv {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool from_env = false;  // WORLD_SIZE was set
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK (default: RANK), MASTER_ADDR (default 127.0.0.1),
// MASTER_PORT (default 29500). Unset WORLD_SIZE means a single process. Throws std::runtime_error
// naming the variable when one is malformed or out of range.
DistEnv env_from_environment();

struct DistOptions {
  std::string backend = "auto";  // auto (gloo on CPU, nccl on CUDA) | gloo | nccl
  torch::Device device = torch::kCPU;
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};  // rendezvous and every collective
};

// A c10d process group. All collectives are blocking and throw std::runtime_error naming the rank
// and world when a peer fails, disconnects or the timeout passes (instead of hanging), and naming the peer at
// fault: every rank's heartbeat thread writes a counter and its step into the rendezvous store once a second, so
// the error can say which rank went silent (dead or stopped), which is alive but behind, or that rank 0, the
// store's host, is unreachable. Naming takes about 1.5 s more after the collective fails.
class ProcessGroup {
 public:
  // Rendezvous (rank 0 hosts the TCPStore at MASTER_ADDR:MASTER_PORT) and builds the backend.
  static std::shared_ptr<ProcessGroup> create(const DistEnv& env, const DistOptions& opt = {});
  ~ProcessGroup();

  int rank() const;
  int world() const;
  const std::string& backend() const;
  std::chrono::milliseconds timeout() const;

  void allreduce_sum(std::vector<torch::Tensor>& tensors);  // in place
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  void barrier();
  // The trainer's current step, reported by the heartbeat (an atomic store: no I/O on the caller's thread).
  void set_progress(int64_t step);

  // An in-flight collective; wait() throws like the blocking calls.
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void wait() = 0;
  };
  std::unique_ptr<Pending> allreduce_sum_async(torch::Tensor flat);  // one contiguous tensor

  struct Impl;

 private:
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Builds the group from the environment when WORLD_SIZE > 1; nullptr otherwise.
std::shared_ptr<ProcessGroup> init_from_env(const DistOptions& opt = {});

// Averages gradients of `params` across the group (see the file comment).
class GradSync {
 public:
  static constexpr int64_t kDefaultBucketBytes = 25 << 20;
  // overlap: register hooks so buckets are all-reduced during backward; false = all in finish().
  GradSync(std::shared_ptr<ProcessGroup> pg, std::vector<torch::Tensor> params,
           int64_t bucket_bytes = kDefaultBucketBytes, bool overlap = true);
  // In place, for parameters held in flat buffers (train/flat_params.h; what the trainer uses): a bucket is a
  // contiguous range of a flat gradient buffer, a post-hook on each parameter's gradient accumulator marks it
  // ready once backward has accumulated into it, the all-reduce runs on the gradients themselves and finish()
  // scales them by 1 / world. No bucket copies, no copy back, no second gradient-sized buffer. The gradients
  // must stay views of the buffers (finish() checks; FlatParams::rebind() restores them). With the flat buffers'
  // header slots (FlatParams grad_header), the header travels in the last bucket's all-reduce: write it before
  // the last micro-batch's backward; after finish() it holds the mean over ranks (the trainer's step statistics
  // and stop request: no extra collective).
  GradSync(std::shared_ptr<ProcessGroup> pg, FlatParams& flat, int64_t bucket_bytes = kDefaultBucketBytes,
           bool overlap = true);
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Rank 0's parameter values to every rank (call once after building the model / resuming).
  void broadcast_parameters();
  // Hooks act only while enabled (default true). For gradient accumulation, disable for all but the
  // last micro-batch's backward (like DDP's no_sync); finish() still reduces the accumulated sum.
  void set_enabled(bool on);
  // Completes the reduction: param.grad() = mean over ranks. Throws if a peer failed.
  void finish();

  int64_t num_buckets() const;
  int64_t buckets_launched_in_backward() const;  // last step: how many were overlapped with backward

  struct State;

 private:
  std::shared_ptr<State> st_;
};

}  // namespace gsdiff::dist
