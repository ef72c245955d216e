// Tests for text8ify: case folding, runs of non-letters, non-ASCII, buffer boundaries, files.
#include "data/text8_parse.h"
#include "data/text8ify.h"
#include "data_test_helpers.h"

using namespace gsdiff::data;
using gsdiff::testing::TempDir;

namespace {
std::string convert(const std::string& in) {
  Text8ifier t;
  std::string out;
  t.feed(in.data(), in.size(), out);
  return out;
}
}  // namespace

TEST(Text8ify, LowerCasesAndCollapsesNonLetters) {
  EXPECT_EQ(convert("Hello, World!"), "hello world");
  EXPECT_EQ(convert("  \n\tLeading and trailing...  \n"), "leading and trailing");
  EXPECT_EQ(convert("1984 was   written in 1949"), "was written in");
  EXPECT_EQ(convert("a-b_c\r\nd"), "a b c d");
  EXPECT_EQ(convert("12345 !!"), "");
  EXPECT_EQ(convert(""), "");
}

TEST(Text8ify, NonAsciiBytesAreNonLetters) {
  // UTF-8 "café naïve Straße": é, ï, ß are multi-byte sequences >= 0x80, treated as separators.
  EXPECT_EQ(convert("caf\xc3\xa9 na\xc3\xafve Stra\xc3\x9f" "e"), "caf na ve stra e");
  EXPECT_EQ(convert("\xe2\x80\x94" "dash\xe2\x80\x94"), "dash");
}

TEST(Text8ify, ChunkedFeedingEqualsOneShot) {
  std::string in = "  The Cat, the HAT; & 42 bats.\n\nEnd ";
  const std::string whole = convert(in);
  for (size_t chunk = 1; chunk <= in.size(); ++chunk) {
    Text8ifier t;
    std::string out;
    for (size_t i = 0; i < in.size(); i += chunk) t.feed(in.data() + i, std::min(chunk, in.size() - i), out);
    EXPECT_EQ(out, whole) << "chunk " << chunk;
    EXPECT_EQ(t.bytes_in(), int64_t(in.size()));
    EXPECT_EQ(t.chars_out(), int64_t(whole.size()));
  }
}

TEST(Text8ify, FileOutputIsValidText8AcrossBufferBoundaries) {
  TempDir d;
  // ~3 MiB so the 1 MiB buffer wraps several times, with a separator run straddling a boundary.
  std::string in;
  while (in.size() < 3u * 1024 * 1024) in += "Word, ANOTHER word--\n";
  in.insert((1u << 20) - 2, "....");
  gsdiff::testing::write_text(d.file("in.txt"), in);
  auto st = text8ify_file(d.file("in.txt"), d.file("out.txt"));
  const std::string out = gsdiff::testing::read_text(d.file("out.txt"));
  EXPECT_EQ(out, convert(in));
  EXPECT_EQ(st.bytes_in, int64_t(in.size()));
  EXPECT_EQ(st.chars_out, int64_t(out.size()));
  EXPECT_EQ(out.substr(0, 22), "word another word word");
  EXPECT_NO_THROW(text8_encode(reinterpret_cast<const uint8_t*>(out.data()), out.size(), "out"));
  EXPECT_FALSE(std::filesystem::exists(d.file("out.txt.tmp")));
}

TEST(Text8ify, Errors) {
  TempDir d;
  EXPECT_ERROR_WITH(text8ify_file(d.file("missing.txt"), d.file("o.txt")), std::runtime_error, "missing.txt",
                    "file not found");
  gsdiff::testing::write_text(d.file("a.txt"), "abc");
  EXPECT_ERROR_WITH(text8ify_file(d.file("a.txt"), d.file("a.txt")), std::runtime_error, "same file");
  EXPECT_ERROR_WITH(text8ify_file(d.file("a.txt"), d.file("nodir/o.txt")), std::runtime_error, "nodir/o.txt",
                    "cannot create");
  EXPECT_ERROR_WITH(text8ify_file(d.str(), d.file("o.txt")), std::runtime_error, "is a directory");
}
