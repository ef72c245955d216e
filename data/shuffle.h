// Pure, version-independent permutations and rank splits: f(seed, epoch, rank, world).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gsdiff::data {

// SplitMix64 finaliser; the whole loader's randomness is derived from it, so results do not
// depend on the LibTorch version.
uint64_t mix64(uint64_t x);
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0);

// A permutation of 0..n-1 that depends only on (seed, epoch) (Fisher-Yates over SplitMix64).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

// What happens to the n % world examples that do not divide evenly across ranks:
// Drop: every rank gets floor(n / world) (the last n % world of the epoch's order are
//       skipped; they differ each epoch when shuffled) -- equal batch counts for training.
// Spread: ranks 0 .. n%world-1 get one extra, so the union is exactly the epoch -- for evaluation.
enum class Remainder { Drop, Spread };
Remainder parse_remainder(const std::string& s);

// Rank `rank`'s examples for `epoch` from the epoch order (shuffled or 0..n-1). Ranks are disjoint.
// Spread, or block == 0: one contiguous block per rank; with Spread their union is 0..n-1.
// Drop with block = the per-rank batch size b: batch-interleaved. The order is cut into global batches of
// world * b and rank r takes the r-th b of each, so rank r's batch j is batch j * world + r of a one-process
// run with batch b (and the union of the ranks' batch j is the one-process batch j at batch world * b). The
// tail after the last whole global batch is split into equal contiguous blocks (less than one batch each).
// Either way Drop skips exactly the last n % world entries of the order.
std::vector<int64_t> rank_indices(int64_t n, uint64_t seed, int64_t epoch, int64_t rank, int64_t world, bool shuffle,
                                  Remainder rem, int64_t block = 0);

}  // namespace gsdiff::data
