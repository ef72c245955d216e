// Tests for the loader: permutations, rank splits, exact resume across epochs, prefetch, errors.
#include <torch/torch.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/shuffle.h"
#include "data_test_helpers.h"

using namespace gsdiff::data;

namespace {
// Example i is the scalar row [i], so a batch shows exactly which examples it holds.
std::shared_ptr<Dataset> range_dataset(int64_t n) {
  return std::make_shared<TensorDataset>("range", torch::arange(n, torch::kInt64).unsqueeze(1), DataKind::Tokens, n);
}
std::vector<int64_t> ids(const Batch& b) {
  auto t = b.x.reshape({-1}).contiguous();
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}
LoaderOptions opts(int64_t bs, uint64_t seed, int64_t prefetch = 2) {
  LoaderOptions o;
  o.batch_size = bs;
  o.seed = seed;
  o.prefetch = prefetch;
  return o;
}
}  // namespace

TEST(Shuffle, PermutationIsPureAndFreshPerEpoch) {
  auto p0 = epoch_permutation(1000, 42, 0);
  EXPECT_EQ(p0, epoch_permutation(1000, 42, 0));
  EXPECT_NE(p0, epoch_permutation(1000, 42, 1));
  EXPECT_NE(p0, epoch_permutation(1000, 43, 0));
  auto sorted = p0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota);
  // Pinned values: the order must not change between builds or LibTorch versions.
  auto p = epoch_permutation(8, 1, 0);
  EXPECT_EQ(p, epoch_permutation(8, 1, 0));
  EXPECT_EQ(mix64(0), 0xe220a8397b1dcdafull);
}

TEST(Shuffle, RanksAreDisjointAndCoverTheEpoch) {
  const int64_t n = 103, world = 4;
  for (auto [rem, block] : {std::pair{Remainder::Drop, int64_t(0)}, std::pair{Remainder::Drop, int64_t(6)},
                            std::pair{Remainder::Spread, int64_t(0)}, std::pair{Remainder::Spread, int64_t(6)}}) {
    SCOPED_TRACE(block);
    std::set<int64_t> all;
    size_t total = 0;
    for (int64_t r = 0; r < world; ++r) {
      auto idx = rank_indices(n, 9, 2, r, world, true, rem, block);
      EXPECT_EQ(int64_t(idx.size()), rem == Remainder::Drop ? 25 : (r < 3 ? 26 : 25));
      total += idx.size();
      all.insert(idx.begin(), idx.end());
    }
    EXPECT_EQ(all.size(), total);  // no overlap
    if (rem == Remainder::Spread) {
      EXPECT_EQ(int64_t(all.size()), n);  // no gap
    } else {
      // Drop: exactly the last n % world entries of the epoch order are skipped.
      auto perm = epoch_permutation(n, 9, 2);
      std::set<int64_t> expect(perm.begin(), perm.begin() + 100);
      EXPECT_EQ(all, expect);
    }
  }
  EXPECT_ERROR_WITH(rank_indices(10, 0, 0, 4, 4, true, Remainder::Drop), std::invalid_argument, "rank 4");
  EXPECT_ERROR_WITH(rank_indices(10, 0, 0, 0, 2, true, Remainder::Drop, -1), std::invalid_argument, "block");
  EXPECT_ERROR_WITH(parse_remainder("pad"), std::invalid_argument, "unknown remainder 'pad'");
}

// World-size invariance of the data order: with batch b per rank, rank r's batch j is batch j * world + r
// of one process at batch b, and the ranks' batch j together are one process's batch j at batch world * b.
TEST(Loader, RanksInterleaveWholeBatchesOfTheOneProcessOrder) {
  const int64_t n = 101, b = 4, world = 3;  // 8 global batches of 12 per epoch; 5 left over
  auto ds = range_dataset(n);
  Loader one(ds, opts(b, 7, 0)), combined(ds, opts(world * b, 7, 0));
  std::vector<std::unique_ptr<Loader>> ranks;
  for (int64_t r = 0; r < world; ++r) {
    auto o = opts(b, 7, 0);
    o.rank = r, o.world = world;
    ranks.push_back(std::make_unique<Loader>(ds, o));
    EXPECT_EQ(ranks.back()->batches_per_epoch(), 8);  // the 5 left over give each rank 1, less than a batch
  }
  for (int64_t epoch : {0, 3})
    for (int64_t j = 0; j < 8; ++j) {
      std::vector<int64_t> joined;
      for (int64_t r = 0; r < world; ++r) {
        auto got = ids(ranks[r]->batch_at(epoch, j));
        EXPECT_EQ(got, ids(one.batch_at(epoch, j * world + r))) << "epoch " << epoch << " rank " << r << " batch " << j;
        joined.insert(joined.end(), got.begin(), got.end());
      }
      EXPECT_EQ(joined, ids(combined.batch_at(epoch, j))) << "epoch " << epoch << " batch " << j;
    }
}

// A checkpoint of N ranks resumes with N' ranks on the same one-process order: N ranks at batch j have
// consumed one-process batches 0 .. jN - 1, so rank r' continues with one-process batch jN + r'.
TEST(Loader, PositionFromAnotherWorldSizeContinuesTheOneProcessOrder) {
  auto ds = range_dataset(52);  // one process at batch 4: 13 batches per epoch; 2 ranks: 6; 3 ranks: 4
  Loader one(ds, opts(4, 3, 0));
  auto rank_of = [&](int64_t r, int64_t world) {
    auto o = opts(4, 3, 0);
    o.rank = r, o.world = world;
    return std::make_unique<Loader>(ds, o);
  };
  const LoaderPosition saved{1, 3, 3, 2};  // 2 ranks at batch 3 of epoch 1: 6 batches consumed
  for (int64_t world : {1, 2, 3, 6}) {
    for (int64_t r = 0; r < world; ++r) {
      auto l = rank_of(r, world);
      l->set_position(saved);
      EXPECT_EQ(ids(l->next()), ids(one.batch_at(1, 6 + r))) << "world " << world << " rank " << r;
    }
  }
  auto l4 = rank_of(0, 4);
  EXPECT_ERROR_WITH(l4->set_position(saved), std::runtime_error, "6 batches into the epoch");
  // One process at batch 12 of 13 has consumed 12: exactly the 2 ranks' whole epoch, so they start the next.
  auto l2 = rank_of(1, 2);
  l2->set_position(LoaderPosition{0, 12, 3, 1});
  EXPECT_EQ(l2->position(), (LoaderPosition{1, 0, 3, 2}));
  EXPECT_EQ(ids(l2->next()), ids(one.batch_at(1, 1)));
}

TEST(Loader, OneEpochSeesEveryExampleOnceInShuffledOrder) {
  Loader l(range_dataset(40), opts(8, 5));
  EXPECT_EQ(l.batches_per_epoch(), 5);
  std::vector<int64_t> seen;
  for (int i = 0; i < 5; ++i) {
    auto b = l.next();
    EXPECT_EQ(b.epoch, 0);
    EXPECT_EQ(b.index, i);
    auto v = ids(b);
    seen.insert(seen.end(), v.begin(), v.end());
  }
  EXPECT_EQ(seen, epoch_permutation(40, 5, 0));
  EXPECT_EQ(l.position().epoch, 1);
  EXPECT_EQ(l.position().batch, 0);
  auto next_epoch = ids(l.next());
  auto p1 = epoch_permutation(40, 5, 1);
  EXPECT_EQ(next_epoch, std::vector<int64_t>(p1.begin(), p1.begin() + 8));
}

TEST(Loader, ResumeReproducesTheUninterruptedRunAcrossEpochs) {
  auto ds = range_dataset(37);  // 4 batches of 9 per epoch, 1 example dropped
  Loader ref(ds, opts(9, 11));
  std::vector<std::vector<int64_t>> expected;
  for (int i = 0; i < 14; ++i) expected.push_back(ids(ref.next()));
  for (int k : {0, 3, 4, 6, 9}) {
    Loader a(ds, opts(9, 11));
    for (int i = 0; i < k; ++i) EXPECT_EQ(ids(a.next()), expected[i]);
    nlohmann::json saved = a.position().to_json();
    Loader b(ds, opts(9, 11, k % 2 ? 0 : 3));  // prefetch on or off must not matter
    b.set_position(LoaderPosition::from_json(nlohmann::json::parse(saved.dump())));
    EXPECT_EQ(b.position(), a.position());
    for (int i = k; i < 14; ++i) EXPECT_EQ(ids(b.next()), expected[i]) << "resumed after " << k << ", batch " << i;
  }
}

TEST(Loader, BatchAtIsPureAndMatchesNext) {
  auto ds = range_dataset(30);
  Loader l(ds, opts(7, 3));
  for (int64_t e = 0; e < 2; ++e)
    for (int64_t b = 0; b < l.batches_per_epoch(); ++b) EXPECT_EQ(ids(l.next()), ids(l.batch_at(e, b)));
  EXPECT_ERROR_WITH(l.batch_at(0, 4), std::out_of_range, "batch 4 of epoch 0");
}

TEST(Loader, TwoRanksSeeDisjointHalvesOfEachEpoch) {
  auto ds = range_dataset(41);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::set<int64_t> r0, r1;
    for (int64_t rank = 0; rank < 2; ++rank) {
      auto o = opts(5, 8);
      o.rank = rank;
      o.world = 2;
      Loader l(ds, o);
      EXPECT_EQ(l.batches_per_epoch(), 4);
      l.set_position(epoch, 0);
      for (int i = 0; i < 4; ++i)
        for (int64_t v : ids(l.next())) (rank ? r1 : r0).insert(v);
    }
    EXPECT_EQ(r0.size(), 20u);
    EXPECT_EQ(r1.size(), 20u);
    for (int64_t v : r0) EXPECT_EQ(r1.count(v), 0u);
    // Union = the epoch order minus its last (41 % 2 = 1) entry.
    auto perm = epoch_permutation(41, 8, epoch);
    std::set<int64_t> uni(r0);
    uni.insert(r1.begin(), r1.end());
    EXPECT_EQ(uni, std::set<int64_t>(perm.begin(), perm.begin() + 40));
  }
}

TEST(Loader, UnshuffledKeepLastCoversEverything) {
  auto o = opts(4, 0);
  o.shuffle = false;
  o.drop_last = false;
  Loader l(range_dataset(10), o);
  EXPECT_EQ(l.batches_per_epoch(), 3);
  EXPECT_EQ(ids(l.next()), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(ids(l.next()), (std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(ids(l.next()), (std::vector<int64_t>{8, 9}));
  EXPECT_EQ(ids(l.next()), (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(Loader, PositionErrors) {
  Loader l(range_dataset(20), opts(5, 1));
  LoaderPosition p{1, 2, 99, 1};
  EXPECT_ERROR_WITH(l.set_position(p), std::runtime_error, "seed 99", "loader seed is 1");
  auto o3 = opts(5, 1);
  o3.rank = 1, o3.world = 3;
  Loader l3(range_dataset(60), o3);
  p = {1, 1, 1, 2};  // 2 ranks at batch 1: 2 batches into the epoch, not a multiple of 3
  EXPECT_ERROR_WITH(l3.set_position(p), std::runtime_error, "world size 2", "3 ranks cannot continue exactly");
  EXPECT_ERROR_WITH(l.set_position(0, 4), std::out_of_range, "batch 4");
  EXPECT_ERROR_WITH(LoaderPosition::from_json({{"epoch", 1}}), std::runtime_error, "'batch'");
  EXPECT_ERROR_WITH(Loader(range_dataset(3), opts(4, 0)), std::runtime_error, "range has 3 examples",
                    "fewer than one batch of 4");
  auto o = opts(4, 0);
  o.device = torch::Device(torch::kCUDA, 0);
  if (!torch::cuda::is_available())
    EXPECT_ERROR_WITH(Loader(range_dataset(8), o), std::runtime_error, "CUDA is not available");
}

namespace {
// A dataset whose get_batch fails, to check errors cross the prefetch thread.
class Failing : public TensorDataset {
 public:
  Failing() : TensorDataset("failing", torch::zeros({8, 1}), DataKind::Continuous, 0) {}
  Batch get_batch(const std::vector<int64_t>&, uint64_t, int64_t) const override {
    throw std::runtime_error("disk went away");
  }
};
}  // namespace

TEST(Loader, WorkerErrorsAreRethrownNotHung) {
  Loader l(std::make_shared<Failing>(), opts(4, 0));
  EXPECT_ERROR_WITH(l.next(), std::runtime_error, "disk went away");
  EXPECT_ERROR_WITH(l.next(), std::runtime_error, "disk went away");
}
