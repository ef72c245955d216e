// text8 dataset: a split of a 27-symbol character corpus as 256-character sequences.
#pragma once
#include <memory>
#include <string>

#include "data/dataset.h"
#include "data/text8_parse.h"

namespace gsdiff::data {

enum class CropMode { Random, Chunks };

struct Text8Options {
  std::string path;                 // the corpus file (a-z and spaces only; may be gzipped)
  Text8Split split = Text8Split::Train;
  int64_t seq_len = 256;
  Text8Boundaries boundaries;       // default: [0,90M) train, [90M,95M) valid, [95M,end) test
  CropMode crops = CropMode::Chunks;  // see Text8Options::standard
  // The standard settings: random crops for train, non-overlapping chunks for valid/test.
  static Text8Options standard(std::string path, Text8Split split);
};

// Chunks: example i is characters [begin + i L, begin + (i+1) L) of the split; size() is
//   floor(split length / L), the remainder dropped (19,531 for the standard test split).
// Random: size() is the same count (one epoch ~ one pass over the split), example i of
//   epoch e starts at mix_seed(seed, e, i) mod (split length - L + 1): a pure function of
//   (seed, epoch, index), so a resumed run sees the same crops.
// Tokens are int64 [B,L] in 0..26 ('a'..'z' = 0..25, ' ' = 26); no labels.
class Text8Dataset : public Dataset {
 public:
  explicit Text8Dataset(const Text8Options& opt);  // throws on any bad input, naming the file
  std::string name() const override { return "text8"; }
  int64_t size() const override { return count_; }
  std::vector<int64_t> example_shape() const override { return {seq_len_}; }
  DataKind kind() const override { return DataKind::Tokens; }
  int64_t categories() const override { return kText8Vocab; }
  Batch get_batch(const std::vector<int64_t>& indices, uint64_t seed, int64_t epoch) const override;
  CharRange range() const { return range_; }          // the split's characters in the file
  int64_t corpus_length() const { return corpus_len_; }
  int64_t start_of(int64_t index, uint64_t seed, int64_t epoch) const;  // offset within the split

 private:
  std::string path_;
  int64_t seq_len_;
  CropMode crops_;
  CharRange range_;
  int64_t corpus_len_ = 0, count_ = 0;
  std::vector<uint8_t> tokens_;  // the split's tokens only
};

// int64 tokens (any shape; rows of a 2-D tensor become lines) back to text.
std::string text8_decode(const torch::Tensor& tokens);

}  // namespace gsdiff::data
