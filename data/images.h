// CIFAR-10 (binary version) and MNIST / Fashion-MNIST (IDX) loaders into ImageDataset.
#pragma once
#include <memory>
#include <string>

#include "data/dataset.h"

namespace gsdiff::data {

constexpr const char* kDefaultFashionMnistRoot = "/usr/share/datasets/fashion-mnist";

// CIFAR-10 from `dir` holding data_batch_1.bin .. data_batch_5.bin ("train", 50,000 images)
// or test_batch.bin ("test", 10,000). Images uint8 [N,3,32,32], labels 0..9.
std::shared_ptr<ImageDataset> load_cifar10(const std::string& dir, const std::string& split);

// MNIST-format IDX files in `root`: {train,t10k}-{images-idx3,labels-idx1}-ubyte, each either
// plain or with a .gz suffix (plain is used if both exist). Images uint8 [N,1,28,28].
// `name` is "fashion-mnist" or "mnist" (used in messages only).
std::shared_ptr<ImageDataset> load_mnist_idx(const std::string& root, const std::string& split,
                                             const std::string& name = "fashion-mnist");

// One IDX images file -> uint8 [N,1,rows,cols] and one labels file -> int64 [N] (checked pair).
std::pair<torch::Tensor, torch::Tensor> read_idx_pair(const std::string& images_path, const std::string& labels_path,
                                                      int64_t rows = 28, int64_t cols = 28, int64_t num_classes = 10);

}  // namespace gsdiff::data
