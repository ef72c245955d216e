// text8 bytes <-> tokens and the character split arithmetic (torch-free; fuzzable).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gsdiff::data {

constexpr int64_t kText8Vocab = 27;  // 'a'..'z' -> 0..25, ' ' -> 26
constexpr uint8_t kText8Space = 26;

// Encodes text8 bytes into tokens. Throws std::runtime_error naming `name` at the first byte
// outside a-z / space, with its offset (base_offset + position) and value, or on an empty input.
std::vector<uint8_t> text8_encode(const uint8_t* data, size_t size, const std::string& name, int64_t base_offset = 0);

// Tokens back to text; a token outside 0..26 throws std::invalid_argument.
std::string text8_decode(const std::vector<int64_t>& tokens);

enum class Text8Split { Train, Valid, Test };
Text8Split parse_text8_split(const std::string& s);  // "train" | "valid" | "test"

// Split boundaries: either absolute character offsets (default: the standard 90M / 95M) or
// fractions of the corpus length (floor(f * length)). Test runs from valid_end to the end of
// the corpus (100M on the real file).
struct Text8Boundaries {
  bool use_fractions = false;
  int64_t train_end = 90'000'000;
  int64_t valid_end = 95'000'000;
  double train_frac = 0.9;
  double valid_frac = 0.95;
};

struct CharRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// The [begin, end) characters of `split` in a corpus of `corpus_len` characters. Throws
// std::runtime_error naming `name` when a boundary is past the end, boundaries are out of
// order, fractions are outside (0, 1], or the split is empty.
CharRange text8_split_range(int64_t corpus_len, Text8Split split, const Text8Boundaries& b,
                            const std::string& name);

// Non-overlapping chunks of seq_len in a range of range_len characters, remainder dropped
// (5,000,000 / 256 -> 19,531 for the standard test split).
int64_t text8_num_chunks(int64_t range_len, int64_t seq_len);

}  // namespace gsdiff::data
