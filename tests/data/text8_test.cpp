// Tests for text8: encoding, split arithmetic (incl. the 19,531 standard chunks), crops, errors.
#include <torch/torch.h>

#include <set>

#include "data/text8.h"
#include "data_test_helpers.h"

using namespace gsdiff::data;
using gsdiff::testing::TempDir;
using gsdiff::testing::write_text;

namespace {
// A deterministic corpus of n characters over a-z and space.
std::string corpus(int64_t n) {
  std::string s(n, ' ');
  for (int64_t i = 0; i < n; ++i) s[i] = "abcdefghijklmnopqrstuvwxyz "[(i * 7919 + i / 13) % 27];
  return s;
}
Text8Options scaled(const std::string& path, Text8Split split, int64_t seq_len) {
  // The standard 90% / 95% arithmetic scaled to a 1000-character corpus.
  auto o = Text8Options::standard(path, split);
  o.seq_len = seq_len;
  o.boundaries.train_end = 900;
  o.boundaries.valid_end = 950;
  return o;
}
}  // namespace

TEST(Text8, EncodeDecodeRoundTrip) {
  std::string s = "the quick brown fox jumps over the lazy dog";
  auto t = text8_encode(reinterpret_cast<const uint8_t*>(s.data()), s.size(), "mem");
  EXPECT_EQ(t[0], 't' - 'a');
  EXPECT_EQ(t[3], kText8Space);
  std::vector<int64_t> v(t.begin(), t.end());
  EXPECT_EQ(text8_decode(v), s);
  EXPECT_EQ(text8_decode(torch::tensor(std::vector<int64_t>{0, 25, 26, 1})), "az b");
  EXPECT_EQ(text8_decode(torch::tensor(std::vector<int64_t>{0, 1, 2, 3}).reshape({2, 2})), "ab\ncd");
  EXPECT_ERROR_WITH(text8_decode(std::vector<int64_t>{0, 27}), std::invalid_argument, "token 27 at position 1");
}

TEST(Text8, StandardBoundariesGive19531TestChunks) {
  const int64_t n = 100'000'000;
  Text8Boundaries b;
  auto train = text8_split_range(n, Text8Split::Train, b, "text8");
  auto valid = text8_split_range(n, Text8Split::Valid, b, "text8");
  auto test = text8_split_range(n, Text8Split::Test, b, "text8");
  EXPECT_EQ(train.begin, 0);
  EXPECT_EQ(train.end, 90'000'000);
  EXPECT_EQ(valid.begin, 90'000'000);
  EXPECT_EQ(valid.end, 95'000'000);
  EXPECT_EQ(test.begin, 95'000'000);
  EXPECT_EQ(test.end, 100'000'000);
  EXPECT_EQ(text8_num_chunks(test.size(), 256), 19531);
  EXPECT_EQ(text8_num_chunks(valid.size(), 256), 19531);
  EXPECT_EQ(text8_num_chunks(train.size(), 256), 351562);
  // The same split given as fractions.
  b.use_fractions = true;
  EXPECT_EQ(text8_split_range(n, Text8Split::Valid, b, "text8").begin, 90'000'000);
  EXPECT_EQ(text8_split_range(n, Text8Split::Test, b, "text8").begin, 95'000'000);
}

TEST(Text8, ScaledSplitChunksAreExactSlices) {
  TempDir d;
  const std::string text = corpus(1000);
  write_text(d.file("c.txt"), text);
  Text8Dataset test(scaled(d.file("c.txt"), Text8Split::Test, 16));
  EXPECT_EQ(test.range().begin, 950);
  EXPECT_EQ(test.range().end, 1000);
  EXPECT_EQ(test.size(), 3);  // 50 / 16, remainder 2 dropped
  EXPECT_EQ(test.example_shape(), std::vector<int64_t>{16});
  EXPECT_EQ(test.categories(), 27);
  auto b = test.get_batch({0, 1, 2}, 0, 0);
  EXPECT_EQ(b.x.scalar_type(), torch::kInt64);
  EXPECT_EQ(text8_decode(b.x), text.substr(950, 16) + "\n" + text.substr(966, 16) + "\n" + text.substr(982, 16));
  Text8Dataset valid(scaled(d.file("c.txt"), Text8Split::Valid, 16));
  EXPECT_EQ(valid.size(), 3);
  EXPECT_EQ(text8_decode(valid.get_batch({2}, 0, 0).x), text.substr(900 + 32, 16));
}

TEST(Text8, RandomCropsAreDeterministicInSeedEpochIndex) {
  TempDir d;
  const std::string text = corpus(1000);
  write_text(d.file("c.txt"), text);
  Text8Dataset train(scaled(d.file("c.txt"), Text8Split::Train, 16));
  EXPECT_EQ(train.size(), 900 / 16);
  auto a = train.get_batch({0, 1, 2, 3}, 7, 3), a2 = train.get_batch({0, 1, 2, 3}, 7, 3);
  EXPECT_TRUE(torch::equal(a.x, a2.x));
  EXPECT_FALSE(torch::equal(a.x, train.get_batch({0, 1, 2, 3}, 7, 4).x));
  EXPECT_FALSE(torch::equal(a.x, train.get_batch({0, 1, 2, 3}, 8, 3).x));
  std::set<int64_t> starts;
  for (int64_t i = 0; i < train.size(); ++i) {
    int64_t s = train.start_of(i, 7, 3);
    ASSERT_GE(s, 0);
    ASSERT_LE(s, 900 - 16);
    starts.insert(s);
  }
  EXPECT_GT(starts.size(), 40u);  // crops vary across the split
  int64_t s0 = train.start_of(0, 7, 3);
  EXPECT_EQ(text8_decode(a.x[0]), text.substr(s0, 16));
}

TEST(Text8, GzippedCorpusReadsTheSame) {
  TempDir d;
  const std::string text = corpus(1000);
  write_text(d.file("c.txt"), text);
  gsdiff::testing::write_gzip(d.file("c.txt.gz"), std::vector<uint8_t>(text.begin(), text.end()));
  Text8Dataset a(scaled(d.file("c.txt"), Text8Split::Test, 16)), b(scaled(d.file("c.txt.gz"), Text8Split::Test, 16));
  EXPECT_TRUE(torch::equal(a.get_batch({0, 2}, 0, 0).x, b.get_batch({0, 2}, 0, 0).x));
}

TEST(Text8, BadByteReportsOffsetAndValue) {
  TempDir d;
  std::string text = corpus(1000);
  text[123] = 'A';
  write_text(d.file("c.txt"), text);
  EXPECT_ERROR_WITH(Text8Dataset(scaled(d.file("c.txt"), Text8Split::Train, 16)), std::runtime_error, "c.txt",
                    "byte 0x41 ('A') at offset 123", "not a-z or space");
  text[123] = 'a';
  text[999] = '\n';
  write_text(d.file("c.txt"), text);
  EXPECT_ERROR_WITH(Text8Dataset(scaled(d.file("c.txt"), Text8Split::Train, 16)), std::runtime_error,
                    "byte 0x0a at offset 999");
}

TEST(Text8, EmptyMissingShortAndPastTheEnd) {
  TempDir d;
  write_text(d.file("empty.txt"), "");
  EXPECT_ERROR_WITH(Text8Dataset(Text8Options::standard(d.file("empty.txt"), Text8Split::Train)), std::runtime_error,
                    "empty.txt", "empty file");
  EXPECT_ERROR_WITH(Text8Dataset(Text8Options::standard(d.file("none.txt"), Text8Split::Train)), std::runtime_error,
                    "none.txt", "file not found");
  write_text(d.file("c.txt"), corpus(1000));
  // Default boundaries (90M, 95M) on a 1000-character corpus are past its end.
  EXPECT_ERROR_WITH(Text8Dataset(Text8Options::standard(d.file("c.txt"), Text8Split::Test)), std::runtime_error,
                    "c.txt", "split boundary 95000000 is past the end of the corpus (1000 characters)");
  // The 50-character test split is shorter than one sequence of 64.
  EXPECT_ERROR_WITH(Text8Dataset(scaled(d.file("c.txt"), Text8Split::Test, 64)), std::runtime_error, "c.txt",
                    "has 50 characters, shorter than one sequence of 64");
  auto o = scaled(d.file("c.txt"), Text8Split::Valid, 16);
  o.boundaries.valid_end = 800;
  EXPECT_ERROR_WITH(Text8Dataset{o}, std::runtime_error, "out of order");
  o.boundaries.use_fractions = true;
  o.boundaries.train_frac = 1.5;
  EXPECT_ERROR_WITH(Text8Dataset{o}, std::runtime_error, "fractions must lie in (0, 1]");
  o.boundaries.train_frac = 0.95;
  o.boundaries.valid_frac = 0.95;
  EXPECT_ERROR_WITH(Text8Dataset{o}, std::runtime_error, "the valid split [950, 950) is empty");
  EXPECT_ERROR_WITH(parse_text8_split("dev"), std::invalid_argument, "unknown split 'dev'");
}
