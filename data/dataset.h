// The common dataset interface (image / token / continuous) and the Batch it produces.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gsdiff::data {

enum class DataKind { Image, Tokens, Continuous };
std::string to_string(DataKind k);

struct Batch {
  torch::Tensor x;       // uint8 [B,C,H,W] (images), int64 [B,L] (tokens) or float [B,D] (continuous)
  torch::Tensor labels;  // int64 [B]; undefined when the dataset has no labels
  int64_t epoch = 0;     // the loader position this batch came from
  int64_t index = 0;     // batch number within the epoch (this rank)
};

// A finite, indexable set of examples. Implementations are immutable after construction,
// so get_batch may be called from the loader's prefetch thread.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::string name() const = 0;
  virtual int64_t size() const = 0;                         // examples in one epoch
  virtual std::vector<int64_t> example_shape() const = 0;   // e.g. {3,32,32} or {256}
  virtual DataKind kind() const = 0;
  virtual int64_t num_classes() const { return 0; }         // 0 when there are no labels
  virtual int64_t categories() const = 0;                   // K: 256 images, 27 text8, 0 continuous
  // The examples `indices` (each in [0, size())) as one batch. `seed` and `epoch` drive any
  // per-example randomness (text8 training crops), so the result is a pure function of the
  // arguments. Throws std::out_of_range for a bad index.
  virtual Batch get_batch(const std::vector<int64_t>& indices, uint64_t seed, int64_t epoch) const = 0;
};

// Images held in memory: uint8 [N,C,H,W] plus int64 labels [N].
class ImageDataset : public Dataset {
 public:
  ImageDataset(std::string name, torch::Tensor images, torch::Tensor labels, int64_t num_classes);
  std::string name() const override { return name_; }
  int64_t size() const override { return images_.size(0); }
  std::vector<int64_t> example_shape() const override;
  DataKind kind() const override { return DataKind::Image; }
  int64_t num_classes() const override { return num_classes_; }
  int64_t categories() const override { return 256; }
  Batch get_batch(const std::vector<int64_t>& indices, uint64_t seed, int64_t epoch) const override;
  const torch::Tensor& images() const { return images_; }
  const torch::Tensor& labels() const { return labels_; }

 private:
  std::string name_;
  torch::Tensor images_, labels_;
  int64_t num_classes_;
};

// A fixed tensor of examples (toy sets): x [N, ...] of any dtype, optional labels [N].
class TensorDataset : public Dataset {
 public:
  TensorDataset(std::string name, torch::Tensor x, DataKind kind, int64_t categories);
  std::string name() const override { return name_; }
  int64_t size() const override { return x_.size(0); }
  std::vector<int64_t> example_shape() const override;
  DataKind kind() const override { return kind_; }
  int64_t categories() const override { return categories_; }
  Batch get_batch(const std::vector<int64_t>& indices, uint64_t seed, int64_t epoch) const override;
  const torch::Tensor& tensor() const { return x_; }

 private:
  std::string name_;
  torch::Tensor x_;
  DataKind kind_;
  int64_t categories_;
};

// Checks every index is in [0, n) and returns them as an int64 tensor (throws std::out_of_range).
torch::Tensor checked_index_tensor(const std::vector<int64_t>& indices, int64_t n, const std::string& name);

}  // namespace gsdiff::data
