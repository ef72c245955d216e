// Streaming conversion of any text to text8 form (torch-free; `gsdiff data text8ify`).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace gsdiff::data {

// Rules: ASCII letters are lower-cased; every run of other bytes (digits, punctuation,
// whitespace, and every byte >= 0x80, so non-ASCII letters such as 'é' count as
// non-letters) becomes one space. Leading and trailing spaces are dropped and no newline
// is written, so the output is a valid text8 file (or empty if the input has no letters).
class Text8ifier {
 public:
  // Appends the converted form of `n` input bytes to `out`; state carries across calls.
  void feed(const char* data, size_t n, std::string& out);
  int64_t bytes_in() const { return bytes_in_; }
  int64_t chars_out() const { return chars_out_; }

 private:
  bool pending_space_ = false;  // a run of non-letters seen after some output
  bool any_output_ = false;
  int64_t bytes_in_ = 0, chars_out_ = 0;
};

struct Text8ifyStats {
  int64_t bytes_in = 0;
  int64_t chars_out = 0;
};

// Streams `input` to `output` through a fixed 1 MiB buffer (memory does not grow with the
// file). Writes `output`.tmp then renames it. Throws std::runtime_error naming the file when
// the input is missing or unreadable, the output cannot be written, or both are one file.
Text8ifyStats text8ify_file(const std::string& input, const std::string& output);

}  // namespace gsdiff::data
