// Tensor wrappers over the torch-free CIFAR-10 and IDX parsers.
#include "data/images.h"

#include <cstring>
#include <stdexcept>

#include "data/cifar_parse.h"
#include "data/file_bytes.h"
#include "data/idx_parse.h"

namespace gsdiff::data {
namespace {
torch::Tensor bytes_to_tensor(const std::vector<uint8_t>& v, std::vector<int64_t> shape) {
  auto t = torch::empty(shape, torch::kUInt8);
  if (!v.empty()) std::memcpy(t.data_ptr<uint8_t>(), v.data(), v.size());
  return t;
}
std::string join_path(const std::string& dir, const std::string& file) {
  if (dir.empty()) return file;
  return dir.back() == '/' ? dir + file : dir + "/" + file;
}
}  // namespace

std::shared_ptr<ImageDataset> load_cifar10(const std::string& dir, const std::string& split) {
  auto files = cifar_split_files(split);
  CifarRecords rec;
  for (const auto& f : files) {
    const std::string path = join_path(dir, f);
    if (!file_exists(path))
      throw std::runtime_error(path + ": file not found (cifar10 " + split + " expects " + files.front() +
                               (files.size() > 1 ? " .. " + files.back() : std::string()) +
                               " from the CIFAR-10 binary version in " + dir + ")");
    auto bytes = read_file_bytes(path);
    parse_cifar_append(bytes.data(), bytes.size(), path, rec);
  }
  auto images = bytes_to_tensor(rec.pixels, {rec.count, 3, 32, 32});
  auto labels = bytes_to_tensor(rec.labels, {rec.count}).to(torch::kInt64);
  return std::make_shared<ImageDataset>("cifar10", images, labels, 10);
}

std::pair<torch::Tensor, torch::Tensor> read_idx_pair(const std::string& images_path, const std::string& labels_path,
                                                      int64_t rows, int64_t cols, int64_t num_classes) {
  auto ib = read_file_bytes(images_path);
  auto im = parse_idx(ib.data(), ib.size(), kIdxImagesMagic, images_path);
  ib = {};
  auto lb = read_file_bytes(labels_path);
  auto lab = parse_idx(lb.data(), lb.size(), kIdxLabelsMagic, labels_path);
  check_idx_pair(im, images_path, lab, labels_path, rows, cols, num_classes);
  const int64_t n = im.dims[0];
  return {bytes_to_tensor(im.data, {n, 1, rows, cols}), bytes_to_tensor(lab.data, {n}).to(torch::kInt64)};
}

std::shared_ptr<ImageDataset> load_mnist_idx(const std::string& root, const std::string& split,
                                             const std::string& name) {
  std::string prefix;
  if (split == "train")
    prefix = "train";
  else if (split == "test")
    prefix = "t10k";
  else
    throw std::invalid_argument(name + ": unknown split '" + split + "', expected train or test");
  auto find = [&](const std::string& base) {
    const std::string plain = join_path(root, base);
    if (file_exists(plain)) return plain;
    if (file_exists(plain + ".gz")) return plain + ".gz";
    throw std::runtime_error(plain + ".gz: file not found (" + name + " " + split + " expects " + base +
                             "[.gz] in " + root + ")");
  };
  const std::string ip = find(prefix + "-images-idx3-ubyte");
  const std::string lp = find(prefix + "-labels-idx1-ubyte");
  auto [images, labels] = read_idx_pair(ip, lp, 28, 28, 10);
  return std::make_shared<ImageDataset>(name, images, labels, 10);
}

}  // namespace gsdiff::data
