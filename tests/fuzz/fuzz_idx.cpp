// libFuzzer target: the IDX parser and pair checks either throw runtime_error or agree with the header.
#include <cstdlib>
#include <stdexcept>

#include "data/idx_parse.h"

using namespace gsdiff::data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // First byte: where the images file ends and the labels file starts.
  const size_t cut = 1 + (size - 1) * data[0] / 255;
  const uint8_t* a = data + 1;
  const size_t an = cut - 1, bn = size - cut;
  IdxArray images, labels;
  bool have_images = false;
  try {
    images = parse_idx(a, an, kIdxImagesMagic, "images");
    have_images = true;
    uint64_t prod = 1;
    for (int64_t d : images.dims) prod *= uint64_t(d);
    if (images.dims.size() != 3 || prod != images.data.size() || images.data.size() + 16 != an) std::abort();
    labels = parse_idx(data + cut, bn, kIdxLabelsMagic, "labels");
    if (labels.dims.size() != 1 || uint64_t(labels.dims[0]) != labels.data.size()) std::abort();
    check_idx_pair(images, "images", labels, "labels", images.dims[1], images.dims[2], 10);
    for (uint8_t l : labels.data)
      if (l > 9) std::abort();
    if (labels.dims[0] != images.dims[0]) std::abort();
  } catch (const std::runtime_error&) {
  }
  // The labels parser must also reject or accept the images bytes cleanly.
  if (!have_images) {
    try {
      parse_idx(a, an, kIdxLabelsMagic, "labels-as-images");
    } catch (const std::runtime_error&) {
    }
  }
  return 0;
}
