// IDX format (LeCun's MNIST files): magic 00 00 type ndim, ndim big-endian sizes, payload.
#include "data/idx_parse.h"

#include <cstdio>
#include <stdexcept>

namespace gsdiff::data {
namespace {
uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}
std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}
}  // namespace

IdxArray parse_idx(const uint8_t* data, size_t size, uint32_t expected_magic, const std::string& name) {
  const int64_t ndim = expected_magic & 0xff;
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  if (size == 0) throw std::runtime_error(name + ": empty file, expected an IDX file");
  if (size < 4) throw std::runtime_error(name + ": " + std::to_string(size) + " bytes is too short for an IDX magic number");
  uint32_t magic = be32(data);
  if (magic != expected_magic)
    throw std::runtime_error(name + ": bad IDX magic " + hex32(magic) + ", expected " + hex32(expected_magic) + " (" +
                             std::to_string(expected_magic) + ", unsigned bytes with " + std::to_string(ndim) +
                             " dimensions)");
  if (size < header)
    throw std::runtime_error(name + ": " + std::to_string(size) + " bytes is shorter than the IDX header of " +
                             std::to_string(header) + " bytes");
  IdxArray out;
  uint64_t total = 1;
  for (int64_t d = 0; d < ndim; ++d) {
    uint32_t v = be32(data + 4 + 4 * d);
    if (v == 0) throw std::runtime_error(name + ": IDX dimension " + std::to_string(d) + " is 0");
    out.dims.push_back(v);
    total *= v;  // at most 3 dims of < 2^32 each: checked against the size below before overflow matters
    if (total > (uint64_t(1) << 40))
      throw std::runtime_error(name + ": IDX dimensions describe more than 2^40 bytes");
  }
  const uint64_t payload = size - header;
  if (payload != total)
    throw std::runtime_error(name + ": IDX payload is " + std::to_string(payload) + " bytes, expected " +
                             std::to_string(total) + " from the header dimensions" +
                             (payload < total ? " (truncated file)" : " (trailing bytes)"));
  out.data.assign(data + header, data + size);
  return out;
}

void check_idx_pair(const IdxArray& images, const std::string& images_name, const IdxArray& labels,
                    const std::string& labels_name, int64_t rows, int64_t cols, int64_t num_classes) {
  if (images.dims.size() != 3 || images.dims[1] != rows || images.dims[2] != cols) {
    std::string got;
    for (size_t i = 0; i < images.dims.size(); ++i) got += (i ? "x" : "") + std::to_string(images.dims[i]);
    throw std::runtime_error(images_name + ": IDX images have dimensions " + got + ", expected N x " +
                             std::to_string(rows) + " x " + std::to_string(cols));
  }
  if (labels.dims.size() != 1 || labels.dims[0] != images.dims[0])
    throw std::runtime_error(labels_name + ": " + std::to_string(labels.dims.empty() ? 0 : labels.dims[0]) +
                             " labels, expected " + std::to_string(images.dims[0]) + " to match " + images_name);
  for (size_t i = 0; i < labels.data.size(); ++i)
    if (labels.data[i] >= num_classes)
      throw std::runtime_error(labels_name + ": label " + std::to_string(labels.data[i]) + " at index " +
                               std::to_string(i) + ", expected 0.." + std::to_string(num_classes - 1));
}

}  // namespace gsdiff::data
