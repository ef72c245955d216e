// Text8Dataset: validated corpus, configurable split, random crops or fixed chunks.
#include "data/text8.h"

#include <cstring>
#include <stdexcept>

#include "data/file_bytes.h"
#include "data/shuffle.h"

namespace gsdiff::data {

Text8Options Text8Options::standard(std::string path, Text8Split split) {
  Text8Options o;
  o.path = std::move(path);
  o.split = split;
  o.crops = split == Text8Split::Train ? CropMode::Random : CropMode::Chunks;
  return o;
}

Text8Dataset::Text8Dataset(const Text8Options& opt) : path_(opt.path), seq_len_(opt.seq_len), crops_(opt.crops) {
  if (seq_len_ <= 0) throw std::invalid_argument("text8: seq_len must be positive, got " + std::to_string(seq_len_));
  auto bytes = read_file_bytes(path_);
  auto tokens = text8_encode(bytes.data(), bytes.size(), path_);  // validates every byte of the file
  bytes = {};
  corpus_len_ = static_cast<int64_t>(tokens.size());
  range_ = text8_split_range(corpus_len_, opt.split, opt.boundaries, path_);
  if (range_.size() < seq_len_)
    throw std::runtime_error(path_ + ": the split [" + std::to_string(range_.begin) + ", " +
                             std::to_string(range_.end) + ") has " + std::to_string(range_.size()) +
                             " characters, shorter than one sequence of " + std::to_string(seq_len_));
  count_ = text8_num_chunks(range_.size(), seq_len_);
  tokens_.assign(tokens.begin() + range_.begin, tokens.begin() + range_.end);
}

int64_t Text8Dataset::start_of(int64_t index, uint64_t seed, int64_t epoch) const {
  if (index < 0 || index >= count_)
    throw std::out_of_range("text8: index " + std::to_string(index) + " outside 0.." + std::to_string(count_ - 1));
  if (crops_ == CropMode::Chunks) return index * seq_len_;
  const uint64_t span = static_cast<uint64_t>(range_.size() - seq_len_ + 1);
  return static_cast<int64_t>(mix_seed(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index)) % span);
}

Batch Text8Dataset::get_batch(const std::vector<int64_t>& indices, uint64_t seed, int64_t epoch) const {
  const int64_t b = static_cast<int64_t>(indices.size());
  auto x = torch::empty({b, seq_len_}, torch::kInt64);
  int64_t* out = x.data_ptr<int64_t>();
  for (int64_t i = 0; i < b; ++i) {
    const uint8_t* src = tokens_.data() + start_of(indices[i], seed, epoch);
    for (int64_t j = 0; j < seq_len_; ++j) out[i * seq_len_ + j] = src[j];
  }
  Batch batch;
  batch.x = x;
  return batch;
}

std::string text8_decode(const torch::Tensor& tokens) {
  auto t = tokens.to(torch::kCPU, torch::kInt64).contiguous();
  if (t.dim() == 2) {
    std::string s;
    for (int64_t r = 0; r < t.size(0); ++r) {
      if (r) s.push_back('\n');
      s += text8_decode(t[r]);
    }
    return s;
  }
  t = t.reshape({-1});
  std::vector<int64_t> v(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  return text8_decode(v);
}

}  // namespace gsdiff::data
