// CIFAR-10 binary record parser: bytes -> labels + CHW pixels (torch-free; fuzzable).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gsdiff::data {

constexpr int64_t kCifarImageBytes = 3 * 32 * 32;            // R, G, B planes of 32x32
constexpr int64_t kCifarRecordBytes = 1 + kCifarImageBytes;  // label byte + pixels

struct CifarRecords {
  int64_t count = 0;
  std::vector<uint8_t> labels;  // count values in 0..9
  std::vector<uint8_t> pixels;  // count * 3072 bytes, each record [3][32][32]
};

// Appends the records in `data` to `out`. Throws std::runtime_error naming `name` when the
// size is zero or not a multiple of 3073, or a label is outside 0..9 (with its record index
// and byte offset). On error `out` is left unchanged.
void parse_cifar_append(const uint8_t* data, size_t size, const std::string& name, CifarRecords& out);

// The batch file names of a split: "train" -> data_batch_1..5.bin, "test" -> test_batch.bin.
std::vector<std::string> cifar_split_files(const std::string& split);

}  // namespace gsdiff::data
