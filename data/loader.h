// Seeded, resumable, rank-split batch loader with a background prefetch thread.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "data/dataset.h"
#include "data/shuffle.h"

namespace gsdiff::data {

struct LoaderOptions {
  int64_t batch_size = 64;
  uint64_t seed = 0;
  bool shuffle = true;        // a fresh permutation per epoch, a pure function of (seed, epoch)
  bool drop_last = true;      // drop a final partial batch of the rank's share
  int64_t rank = 0, world = 1;
  Remainder remainder = Remainder::Drop;  // examples that do not divide across ranks (shuffle.h)
  int64_t prefetch = 2;       // batches prepared ahead by the background thread; 0 = synchronous
  torch::Device device = torch::kCPU;  // CUDA: pinned host batches, non-blocking copies
};

// Where the loader stands: the next batch it returns is batch `batch` of epoch `epoch`.
// seed and world are recorded: a restore with another seed fails loudly, one with another world size maps the
// position onto the one-process order (set_position).
struct LoaderPosition {
  int64_t epoch = 0, batch = 0;
  uint64_t seed = 0;
  int64_t world = 1;
  nlohmann::json to_json() const;
  static LoaderPosition from_json(const nlohmann::json& j);  // throws naming a missing/bad key
  bool operator==(const LoaderPosition& o) const {
    return epoch == o.epoch && batch == o.batch && seed == o.seed && world == o.world;
  }
};

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions opt);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  Batch next();                            // the batch at position(), then advances (epochs roll over)
  LoaderPosition position() const;         // position of the batch next() returns
  // For --resume; throws on a seed mismatch. A position saved by another world size continues the same
  // one-process order when the batches consumed so far (batch x saved world) divide by this world size.
  void set_position(const LoaderPosition& p);
  void set_position(int64_t epoch, int64_t batch);

  // Pure: the batch at (epoch, b) for this rank, on the CPU, independent of the loader's state.
  Batch batch_at(int64_t epoch, int64_t b) const;
  // This rank's example indices for an epoch, in batch order.
  std::vector<int64_t> epoch_indices(int64_t epoch) const;
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  int64_t examples_per_epoch() const { return rank_examples_; }  // this rank's share
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return opt_; }

 private:
  struct Item {
    Batch batch;
    std::exception_ptr error;
  };
  void start_worker();
  void stop_worker();
  void worker_loop(int64_t epoch, int64_t b);
  Batch to_device(Batch b) const;

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions opt_;
  int64_t rank_examples_ = 0, batches_per_epoch_ = 0;
  int64_t epoch_ = 0, batch_ = 0;  // consumer position

  mutable std::mutex cache_mu_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_indices_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace gsdiff::data
