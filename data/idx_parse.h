// IDX (MNIST / Fashion-MNIST) parser: bytes -> dims + uint8 payload (torch-free; fuzzable).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gsdiff::data {

constexpr uint32_t kIdxImagesMagic = 0x00000803;  // 2051: unsigned byte, 3 dims
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // 2049: unsigned byte, 1 dim

struct IdxArray {
  std::vector<int64_t> dims;  // big-endian 32-bit sizes from the header
  std::vector<uint8_t> data;  // prod(dims) bytes, row-major
};

// Parses an IDX file of unsigned bytes whose magic must equal `expected_magic`
// (0x00 0x00 0x08 ndim). Throws std::runtime_error naming `name` on: a file shorter than
// its header, a wrong magic (says which was expected), a zero dimension, or a payload
// size other than prod(dims) (too short or trailing bytes).
IdxArray parse_idx(const uint8_t* data, size_t size, uint32_t expected_magic, const std::string& name);

// Checks an images array [N, rows, cols] against the expected rows x cols and a labels
// array [N] against the image count and 0..num_classes-1. Throws naming the files.
void check_idx_pair(const IdxArray& images, const std::string& images_name, const IdxArray& labels,
                    const std::string& labels_name, int64_t rows, int64_t cols, int64_t num_classes);

}  // namespace gsdiff::data
