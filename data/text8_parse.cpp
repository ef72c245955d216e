// text8 validation/encoding and the [0,90M) / [90M,95M) / [95M,end) split arithmetic.
#include "data/text8_parse.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace gsdiff::data {

std::vector<uint8_t> text8_encode(const uint8_t* data, size_t size, const std::string& name, int64_t base_offset) {
  if (size == 0) throw std::runtime_error(name + ": empty file, expected text8 characters (a-z and space)");
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; ++i) {
    uint8_t c = data[i];
    if (c >= 'a' && c <= 'z') {
      out[i] = static_cast<uint8_t>(c - 'a');
    } else if (c == ' ') {
      out[i] = kText8Space;
    } else {
      char buf[64];
      if (c >= 0x21 && c < 0x7f)
        std::snprintf(buf, sizeof buf, "byte 0x%02x ('%c')", c, c);
      else
        std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
      throw std::runtime_error(name + ": " + buf + " at offset " + std::to_string(base_offset + int64_t(i)) +
                               " is not a-z or space (convert text with `gsdiff data text8ify`)");
    }
  }
  return out;
}

std::string text8_decode(const std::vector<int64_t>& tokens) {
  std::string s(tokens.size(), ' ');
  for (size_t i = 0; i < tokens.size(); ++i) {
    int64_t t = tokens[i];
    if (t < 0 || t >= kText8Vocab)
      throw std::invalid_argument("text8_decode: token " + std::to_string(t) + " at position " + std::to_string(i) +
                                  " is outside 0..26");
    s[i] = t == kText8Space ? ' ' : static_cast<char>('a' + t);
  }
  return s;
}

Text8Split parse_text8_split(const std::string& s) {
  if (s == "train") return Text8Split::Train;
  if (s == "valid" || s == "validation") return Text8Split::Valid;
  if (s == "test") return Text8Split::Test;
  throw std::invalid_argument("text8: unknown split '" + s + "', expected train, valid or test");
}

CharRange text8_split_range(int64_t corpus_len, Text8Split split, const Text8Boundaries& b, const std::string& name) {
  int64_t t_end = b.train_end, v_end = b.valid_end;
  if (b.use_fractions) {
    if (!(b.train_frac > 0 && b.train_frac <= 1 && b.valid_frac > 0 && b.valid_frac <= 1))
      throw std::runtime_error(name + ": split fractions must lie in (0, 1], got " + std::to_string(b.train_frac) +
                               " and " + std::to_string(b.valid_frac));
    // f = 1 maps to the exact end (double(corpus_len) may round above INT64_MAX).
    auto at = [&](double f) {
      return f >= 1 ? corpus_len : std::min(corpus_len, static_cast<int64_t>(f * double(corpus_len)));
    };
    t_end = at(b.train_frac);
    v_end = at(b.valid_frac);
  }
  if (t_end < 0 || v_end < t_end)
    throw std::runtime_error(name + ": split boundaries out of order: train ends at " + std::to_string(t_end) +
                             ", valid ends at " + std::to_string(v_end));
  if (v_end > corpus_len || t_end > corpus_len)
    throw std::runtime_error(name + ": split boundary " + std::to_string(v_end > corpus_len ? v_end : t_end) +
                             " is past the end of the corpus (" + std::to_string(corpus_len) +
                             " characters); set smaller boundaries or fractions");
  CharRange r;
  const char* label = "train";
  switch (split) {
    case Text8Split::Train: r = {0, t_end}; break;
    case Text8Split::Valid: r = {t_end, v_end}; label = "valid"; break;
    case Text8Split::Test: r = {v_end, corpus_len}; label = "test"; break;
  }
  if (r.size() <= 0)
    throw std::runtime_error(name + ": the " + std::string(label) + " split [" + std::to_string(r.begin) + ", " +
                             std::to_string(r.end) + ") is empty");
  return r;
}

int64_t text8_num_chunks(int64_t range_len, int64_t seq_len) {
  if (seq_len <= 0) throw std::invalid_argument("text8: seq_len must be positive, got " + std::to_string(seq_len));
  return range_len < 0 ? 0 : range_len / seq_len;
}

}  // namespace gsdiff::data
