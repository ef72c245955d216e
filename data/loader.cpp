// Loader: pure (seed, epoch, rank, world) batch-interleaved order, prefetch thread, exact resume.
#include "data/loader.h"

#include <algorithm>
#include <stdexcept>

namespace gsdiff::data {

nlohmann::json LoaderPosition::to_json() const {
  return {{"epoch", epoch}, {"batch", batch}, {"seed", seed}, {"world", world}};
}

LoaderPosition LoaderPosition::from_json(const nlohmann::json& j) {
  LoaderPosition p;
  for (const char* k : {"epoch", "batch", "seed", "world"})
    if (!j.is_object() || !j.contains(k) || !j.at(k).is_number_integer())
      throw std::runtime_error(std::string("loader position: missing or non-integer key '") + k + "' in " + j.dump());
  p.epoch = j.at("epoch").get<int64_t>();
  p.batch = j.at("batch").get<int64_t>();
  p.seed = j.at("seed").get<uint64_t>();
  p.world = j.at("world").get<int64_t>();
  return p;
}

Loader::Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions opt) : dataset_(std::move(dataset)), opt_(opt) {
  if (!dataset_) throw std::invalid_argument("loader: null dataset");
  if (opt_.batch_size < 1) throw std::invalid_argument("loader: batch_size must be >= 1");
  if (opt_.world < 1 || opt_.rank < 0 || opt_.rank >= opt_.world)
    throw std::invalid_argument("loader: rank " + std::to_string(opt_.rank) + " outside world size " +
                                std::to_string(opt_.world));
  if (opt_.prefetch < 0) throw std::invalid_argument("loader: prefetch must be >= 0");
  const int64_t n = dataset_->size(), base = n / opt_.world, extra = n % opt_.world;
  rank_examples_ = base + (opt_.remainder == Remainder::Spread && opt_.rank < extra ? 1 : 0);
  batches_per_epoch_ = opt_.drop_last ? rank_examples_ / opt_.batch_size
                                      : (rank_examples_ + opt_.batch_size - 1) / opt_.batch_size;
  if (batches_per_epoch_ == 0)
    throw std::runtime_error("loader: " + dataset_->name() + " has " + std::to_string(n) + " examples, giving rank " +
                             std::to_string(opt_.rank) + " of " + std::to_string(opt_.world) + " " +
                             std::to_string(rank_examples_) + ", fewer than one batch of " +
                             std::to_string(opt_.batch_size) + (opt_.drop_last ? " (drop_last)" : ""));
  if (opt_.device.is_cuda() && !torch::cuda::is_available())
    throw std::runtime_error("loader: device " + opt_.device.str() + " requested but CUDA is not available");
  start_worker();
}

Loader::~Loader() { stop_worker(); }

// Caller holds cache_mu_. One epoch's order is kept, so a batch costs only its slice.
static void fill_cache(const Dataset& ds, const LoaderOptions& o, int64_t epoch, int64_t& cached_epoch,
                       std::vector<int64_t>& cached) {
  if (cached_epoch == epoch) return;
  cached = rank_indices(ds.size(), o.seed, epoch, o.rank, o.world, o.shuffle, o.remainder, o.batch_size);
  cached_epoch = epoch;
}

std::vector<int64_t> Loader::epoch_indices(int64_t epoch) const {
  std::lock_guard<std::mutex> lk(cache_mu_);
  fill_cache(*dataset_, opt_, epoch, cached_epoch_, cached_indices_);
  return cached_indices_;
}

Batch Loader::batch_at(int64_t epoch, int64_t b) const {
  if (epoch < 0 || b < 0 || b >= batches_per_epoch_)
    throw std::out_of_range("loader: batch " + std::to_string(b) + " of epoch " + std::to_string(epoch) +
                            " outside 0.." + std::to_string(batches_per_epoch_ - 1));
  std::vector<int64_t> idx;
  {
    std::lock_guard<std::mutex> lk(cache_mu_);
    fill_cache(*dataset_, opt_, epoch, cached_epoch_, cached_indices_);
    const auto& all = cached_indices_;
    const int64_t lo = b * opt_.batch_size, hi = std::min<int64_t>(lo + opt_.batch_size, all.size());
    idx.assign(all.begin() + lo, all.begin() + hi);
  }
  Batch out = dataset_->get_batch(idx, opt_.seed, epoch);
  out.epoch = epoch;
  out.index = b;
  return out;
}

Batch Loader::to_device(Batch b) const {
  if (!opt_.device.is_cuda()) return b;
  b.x = b.x.to(opt_.device, /*non_blocking=*/true);
  if (b.labels.defined()) b.labels = b.labels.to(opt_.device, /*non_blocking=*/true);
  return b;
}

void Loader::worker_loop(int64_t epoch, int64_t b) {
  const bool pin = opt_.device.is_cuda();
  for (;;) {
    Item item;
    try {
      item.batch = batch_at(epoch, b);
      if (pin) {
        item.batch.x = item.batch.x.pin_memory();
        if (item.batch.labels.defined()) item.batch.labels = item.batch.labels.pin_memory();
      }
    } catch (...) {
      item.error = std::current_exception();
    }
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return stop_ || int64_t(queue_.size()) < opt_.prefetch; });
    if (stop_) return;
    bool failed = item.error != nullptr;
    queue_.push_back(std::move(item));
    cv_.notify_all();
    if (failed) return;  // the consumer rethrows; nothing after an error is produced
    if (++b == batches_per_epoch_) {
      b = 0;
      ++epoch;
    }
  }
}

void Loader::start_worker() {
  if (opt_.prefetch == 0) return;
  stop_ = false;
  queue_.clear();
  worker_ = std::thread([this, e = epoch_, b = batch_] { worker_loop(e, b); });
}

void Loader::stop_worker() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
  queue_.clear();
}

Batch Loader::next() {
  Batch out;
  if (opt_.prefetch == 0) {
    out = batch_at(epoch_, batch_);
  } else {
    Item item;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return !queue_.empty(); });
      // An error stays at the front, so every later next() rethrows it instead of waiting.
      if (queue_.front().error) std::rethrow_exception(queue_.front().error);
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    cv_.notify_all();
    out = std::move(item.batch);
  }
  if (++batch_ == batches_per_epoch_) {
    batch_ = 0;
    ++epoch_;
  }
  return to_device(std::move(out));
}

LoaderPosition Loader::position() const {
  LoaderPosition p;
  p.epoch = epoch_;
  p.batch = batch_;
  p.seed = opt_.seed;
  p.world = opt_.world;
  return p;
}

void Loader::set_position(int64_t epoch, int64_t batch) {
  if (epoch < 0 || batch < 0 || batch >= batches_per_epoch_)
    throw std::out_of_range("loader: position (epoch " + std::to_string(epoch) + ", batch " + std::to_string(batch) +
                            ") outside 0.." + std::to_string(batches_per_epoch_ - 1) + " batches per epoch");
  stop_worker();
  epoch_ = epoch;
  batch_ = batch;
  start_worker();
}

void Loader::set_position(const LoaderPosition& p) {
  if (p.seed != opt_.seed)
    throw std::runtime_error("loader: saved position has seed " + std::to_string(p.seed) + " but the loader seed is " +
                             std::to_string(opt_.seed));
  if (p.world == opt_.world) return set_position(p.epoch, p.batch);
  // Another world size: ranks move in step, so p.world ranks at batch j have consumed one-process batches
  // 0 .. j * p.world - 1 of the epoch (the split interleaves whole batches, shuffle.h). This world continues
  // from there when that count divides by its size.
  if (p.world < 1 || p.batch < 0)
    throw std::runtime_error("loader: saved position has world size " + std::to_string(p.world) + " and batch " +
                             std::to_string(p.batch));
  const int64_t consumed = p.batch * p.world;
  if (opt_.remainder != Remainder::Drop || consumed % opt_.world != 0)
    throw std::runtime_error("loader: saved position (epoch " + std::to_string(p.epoch) + ", batch " +
                             std::to_string(p.batch) + " of world size " + std::to_string(p.world) + ") is " +
                             std::to_string(consumed) + " batches into the epoch, which " +
                             std::to_string(opt_.world) + " ranks cannot continue exactly; resume with a world size "
                             "that divides " + std::to_string(consumed));
  const int64_t b = consumed / opt_.world;
  if (b == batches_per_epoch_) return set_position(p.epoch + 1, 0);
  set_position(p.epoch, b);
}

}  // namespace gsdiff::data
