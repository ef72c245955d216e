// libFuzzer target: text8 encode/decode round trip, text8ify invariants, split arithmetic bounds.
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "data/text8_parse.h"
#include "data/text8ify.h"

using namespace gsdiff::data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 1. encode: valid input round-trips through decode; invalid input throws runtime_error.
  try {
    auto t = text8_encode(data, size, "fuzz");
    std::vector<int64_t> v(t.begin(), t.end());
    if (text8_decode(v) != std::string(reinterpret_cast<const char*>(data), size)) std::abort();
  } catch (const std::runtime_error&) {
  }
  // 2. text8ify: output is text8 without leading/trailing/double spaces, independent of chunking.
  std::string once, chunked;
  Text8ifier a, b;
  a.feed(reinterpret_cast<const char*>(data), size, once);
  const size_t step = size ? 1 + data[0] % 7 : 1;
  for (size_t i = 0; i < size; i += step) b.feed(reinterpret_cast<const char*>(data) + i, std::min(step, size - i), chunked);
  if (once != chunked || a.chars_out() != int64_t(once.size())) std::abort();
  if (!once.empty()) {
    if (once.front() == ' ' || once.back() == ' ' || once.find("  ") != std::string::npos) std::abort();
    text8_encode(reinterpret_cast<const uint8_t*>(once.data()), once.size(), "out");  // must not throw
  }
  // 3. split arithmetic: a range inside the corpus or a runtime_error, never UB.
  if (size >= 33) {
    int64_t len, te, ve;
    double tf, vf;
    std::memcpy(&len, data, 8);
    std::memcpy(&te, data + 8, 8);
    std::memcpy(&ve, data + 16, 8);
    std::memcpy(&tf, data + 8, 8);
    std::memcpy(&vf, data + 16, 8);
    len = len < 0 ? -(len + 1) : len;
    Text8Boundaries bd;
    bd.use_fractions = data[32] & 1;
    bd.train_end = te;
    bd.valid_end = ve;
    bd.train_frac = tf;
    bd.valid_frac = vf;
    for (auto split : {Text8Split::Train, Text8Split::Valid, Text8Split::Test}) {
      try {
        auto r = text8_split_range(len, split, bd, "fuzz");
        if (r.begin < 0 || r.end > len || r.begin >= r.end) std::abort();
        if (text8_num_chunks(r.size(), 256) * 256 > r.size()) std::abort();
      } catch (const std::runtime_error&) {
      }
    }
  }
  return 0;
}
