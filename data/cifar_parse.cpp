// CIFAR-10 binary version: 3073-byte records (label, then R, G, B planes of 32x32).
#include "data/cifar_parse.h"

#include <stdexcept>

namespace gsdiff::data {

void parse_cifar_append(const uint8_t* data, size_t size, const std::string& name, CifarRecords& out) {
  if (size == 0) throw std::runtime_error(name + ": empty file, expected CIFAR-10 records of 3073 bytes");
  if (size % kCifarRecordBytes != 0)
    throw std::runtime_error(name + ": size " + std::to_string(size) +
                             " bytes is not a multiple of the CIFAR-10 record size 3073 (1 label + 3072 pixels)");
  const int64_t n = static_cast<int64_t>(size) / kCifarRecordBytes;
  for (int64_t i = 0; i < n; ++i) {
    uint8_t label = data[i * kCifarRecordBytes];
    if (label > 9)
      throw std::runtime_error(name + ": record " + std::to_string(i) + " (byte offset " +
                               std::to_string(i * kCifarRecordBytes) + ") has label " + std::to_string(label) +
                               ", expected 0..9");
  }
  out.labels.reserve(out.labels.size() + n);
  out.pixels.reserve(out.pixels.size() + n * kCifarImageBytes);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* rec = data + i * kCifarRecordBytes;
    out.labels.push_back(rec[0]);
    out.pixels.insert(out.pixels.end(), rec + 1, rec + kCifarRecordBytes);
  }
  out.count += n;
}

std::vector<std::string> cifar_split_files(const std::string& split) {
  if (split == "train")
    return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
  if (split == "test") return {"test_batch.bin"};
  throw std::invalid_argument("cifar10: unknown split '" + split + "', expected train or test (CIFAR-10 has no validation files)");
}

}  // namespace gsdiff::data
