// ImageDataset and TensorDataset: in-memory datasets behind the common interface.
#include "data/dataset.h"

#include <stdexcept>

namespace gsdiff::data {

std::string to_string(DataKind k) {
  switch (k) {
    case DataKind::Image: return "image";
    case DataKind::Tokens: return "tokens";
    case DataKind::Continuous: return "continuous";
  }
  return "?";
}

torch::Tensor checked_index_tensor(const std::vector<int64_t>& indices, int64_t n, const std::string& name) {
  for (int64_t i : indices)
    if (i < 0 || i >= n)
      throw std::out_of_range(name + ": index " + std::to_string(i) + " outside 0.." + std::to_string(n - 1));
  return torch::tensor(indices, torch::kInt64);
}

ImageDataset::ImageDataset(std::string name, torch::Tensor images, torch::Tensor labels, int64_t num_classes)
    : name_(std::move(name)), images_(std::move(images)), labels_(std::move(labels)), num_classes_(num_classes) {
  if (images_.dim() != 4 || images_.scalar_type() != torch::kUInt8)
    throw std::invalid_argument(name_ + ": images must be uint8 [N,C,H,W]");
  if (labels_.dim() != 1 || labels_.size(0) != images_.size(0) || labels_.scalar_type() != torch::kInt64)
    throw std::invalid_argument(name_ + ": labels must be int64 [N] matching the images");
}

std::vector<int64_t> ImageDataset::example_shape() const {
  return {images_.size(1), images_.size(2), images_.size(3)};
}

Batch ImageDataset::get_batch(const std::vector<int64_t>& indices, uint64_t, int64_t) const {
  auto idx = checked_index_tensor(indices, size(), name_);
  Batch b;
  b.x = images_.index_select(0, idx);
  b.labels = labels_.index_select(0, idx);
  return b;
}

TensorDataset::TensorDataset(std::string name, torch::Tensor x, DataKind kind, int64_t categories)
    : name_(std::move(name)), x_(std::move(x)), kind_(kind), categories_(categories) {
  if (x_.dim() < 1) throw std::invalid_argument(name_ + ": examples must have a leading dimension N");
}

std::vector<int64_t> TensorDataset::example_shape() const {
  auto s = x_.sizes().vec();
  return std::vector<int64_t>(s.begin() + 1, s.end());
}

Batch TensorDataset::get_batch(const std::vector<int64_t>& indices, uint64_t, int64_t) const {
  Batch b;
  b.x = x_.index_select(0, checked_index_tensor(indices, size(), name_));
  return b;
}

}  // namespace gsdiff::data
