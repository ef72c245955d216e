// libFuzzer target: the CIFAR-10 record parser either throws runtime_error or yields sane records.
#include <cstdlib>
#include <stdexcept>

#include "data/cifar_parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gsdiff::data::CifarRecords rec;
  try {
    gsdiff::data::parse_cifar_append(data, size, "fuzz", rec);
  } catch (const std::runtime_error&) {
    if (rec.count != 0 || !rec.labels.empty() || !rec.pixels.empty()) std::abort();  // no partial result
    return 0;
  }
  if (size % gsdiff::data::kCifarRecordBytes != 0 || size == 0) std::abort();
  if (rec.count * gsdiff::data::kCifarRecordBytes != int64_t(size)) std::abort();
  if (rec.pixels.size() != size_t(rec.count) * 3072 || rec.labels.size() != size_t(rec.count)) std::abort();
  for (int64_t i = 0; i < rec.count; ++i) {
    if (rec.labels[i] > 9 || rec.labels[i] != data[i * 3073]) std::abort();
    if (rec.pixels[i * 3072 + 3071] != data[i * 3073 + 3072]) std::abort();
  }
  return 0;
}
