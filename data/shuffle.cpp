// Seeded Fisher-Yates permutations and the rank/world split of an epoch.
#include "data/shuffle.h"

#include <numeric>
#include <stdexcept>
#include <utility>

namespace gsdiff::data {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) { return mix64(mix64(mix64(seed) ^ a) ^ (b * 0x632be59bd9b4e019ull)); }

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  if (n < 0) throw std::invalid_argument("epoch_permutation: negative size");
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t(0));
  uint64_t state = mix_seed(seed, static_cast<uint64_t>(epoch), 0x5eed);
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t bound = static_cast<uint64_t>(i) + 1;
    // Unbiased bounded draw by rejection (threshold = 2^64 mod bound).
    const uint64_t threshold = (0 - bound) % bound;
    uint64_t r;
    do {
      state += 0x9e3779b97f4a7c15ull;
      r = mix64(state);
    } while (r < threshold);
    std::swap(p[i], p[r % bound]);
  }
  return p;
}

Remainder parse_remainder(const std::string& s) {
  if (s == "drop") return Remainder::Drop;
  if (s == "spread") return Remainder::Spread;
  throw std::invalid_argument("loader: unknown remainder '" + s + "', expected drop or spread");
}

std::vector<int64_t> rank_indices(int64_t n, uint64_t seed, int64_t epoch, int64_t rank, int64_t world, bool shuffle,
                                  Remainder rem, int64_t block) {
  if (world < 1 || rank < 0 || rank >= world)
    throw std::invalid_argument("loader: rank " + std::to_string(rank) + " is outside world size " +
                                std::to_string(world));
  std::vector<int64_t> order;
  if (shuffle) {
    order = epoch_permutation(n, seed, epoch);
  } else {
    order.resize(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t(0));
  }
  if (block < 0) throw std::invalid_argument("loader: negative block size " + std::to_string(block));
  if (rem == Remainder::Drop && block > 0 && world > 1) {
    const int64_t global = world * block, full = n / global, tail = (n - full * global) / world;
    std::vector<int64_t> out;
    out.reserve(static_cast<size_t>(full * block + tail));
    for (int64_t j = 0; j < full; ++j) {
      auto first = order.begin() + j * global + rank * block;
      out.insert(out.end(), first, first + block);
    }
    auto first = order.begin() + full * global + rank * tail;
    out.insert(out.end(), first, first + tail);
    return out;
  }
  const int64_t base = n / world, extra = n % world;
  int64_t begin, count;
  if (rem == Remainder::Drop) {
    begin = rank * base;
    count = base;
  } else {
    begin = rank * base + (rank < extra ? rank : extra);
    count = base + (rank < extra ? 1 : 0);
  }
  return std::vector<int64_t>(order.begin() + begin, order.begin() + begin + count);
}

}  // namespace gsdiff::data
