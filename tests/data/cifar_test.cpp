// Tests for the CIFAR-10 binary reader: exact bytes, split files, and every bad-input error.
#include <torch/torch.h>

#include "data/cifar_parse.h"
#include "data/images.h"
#include "data_test_helpers.h"

using namespace gsdiff::data;
using gsdiff::testing::TempDir;

namespace {
// n records; record r has label (r + seed) % 10 and pixel p = (r * 7 + p * 13 + seed) % 256.
std::vector<uint8_t> cifar_bytes(int n, int seed) {
  std::vector<uint8_t> b;
  for (int r = 0; r < n; ++r) {
    b.push_back(uint8_t((r + seed) % 10));
    for (int p = 0; p < 3072; ++p) b.push_back(uint8_t((r * 7 + p * 13 + seed) % 256));
  }
  return b;
}
void write_cifar_dir(const TempDir& d) {
  for (int i = 1; i <= 5; ++i) gsdiff::testing::write_bytes(d.file("data_batch_" + std::to_string(i) + ".bin"), cifar_bytes(2, i));
  gsdiff::testing::write_bytes(d.file("test_batch.bin"), cifar_bytes(3, 100));
}
}  // namespace

TEST(Cifar, ParsesRecordsByteForByte) {
  auto bytes = cifar_bytes(3, 4);
  CifarRecords rec;
  parse_cifar_append(bytes.data(), bytes.size(), "mem", rec);
  ASSERT_EQ(rec.count, 3);
  EXPECT_EQ(rec.labels, (std::vector<uint8_t>{4, 5, 6}));
  ASSERT_EQ(rec.pixels.size(), 3u * 3072);
  EXPECT_EQ(rec.pixels[3072 + 5], uint8_t((7 + 5 * 13 + 4) % 256));
}

TEST(Cifar, LoadsTrainAndTestSplitsAsChw) {
  TempDir d;
  write_cifar_dir(d);
  auto train = load_cifar10(d.str(), "train");
  ASSERT_EQ(train->size(), 10);
  EXPECT_EQ(train->example_shape(), (std::vector<int64_t>{3, 32, 32}));
  EXPECT_EQ(train->categories(), 256);
  EXPECT_EQ(train->num_classes(), 10);
  // Image 3 is record 1 of data_batch_2.bin (seed 2): label 3; channel 1 (G), row 4, col 5 is pixel 1024 + 4*32 + 5.
  EXPECT_EQ(train->labels()[3].item<int64_t>(), 3);
  int p = 1024 + 4 * 32 + 5;
  EXPECT_EQ(train->images()[3][1][4][5].item<uint8_t>(), uint8_t((1 * 7 + p * 13 + 2) % 256));
  EXPECT_EQ(train->images().scalar_type(), torch::kUInt8);
  EXPECT_EQ(train->labels().scalar_type(), torch::kInt64);
  auto test = load_cifar10(d.str(), "test");
  ASSERT_EQ(test->size(), 3);
  auto b = test->get_batch({2, 0}, 0, 0);
  EXPECT_EQ(b.x.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  EXPECT_EQ(b.labels[0].item<int64_t>(), (2 + 100) % 10);
  EXPECT_EQ(b.x[0][2][31][31].item<uint8_t>(), uint8_t((2 * 7 + 3071 * 13 + 100) % 256));
}

TEST(Cifar, MissingFileNamesTheFile) {
  TempDir d;
  write_cifar_dir(d);
  std::filesystem::remove(d.file("data_batch_4.bin"));
  EXPECT_ERROR_WITH(load_cifar10(d.str(), "train"), std::runtime_error, "data_batch_4.bin", "file not found");
}

TEST(Cifar, WrongSizeIsRejected) {
  TempDir d;
  write_cifar_dir(d);
  auto b = cifar_bytes(2, 0);
  b.pop_back();
  gsdiff::testing::write_bytes(d.file("test_batch.bin"), b);
  EXPECT_ERROR_WITH(load_cifar10(d.str(), "test"), std::runtime_error, "test_batch.bin", "6145 bytes",
                    "not a multiple of the CIFAR-10 record size 3073");
}

TEST(Cifar, EmptyFileIsRejected) {
  TempDir d;
  write_cifar_dir(d);
  gsdiff::testing::write_bytes(d.file("test_batch.bin"), {});
  EXPECT_ERROR_WITH(load_cifar10(d.str(), "test"), std::runtime_error, "test_batch.bin", "empty file");
}

TEST(Cifar, BadLabelReportsRecordAndOffset) {
  auto b = cifar_bytes(3, 0);
  b[2 * 3073] = 10;
  CifarRecords rec;
  EXPECT_ERROR_WITH(parse_cifar_append(b.data(), b.size(), "x.bin", rec), std::runtime_error, "x.bin", "record 2",
                    "byte offset 6146", "label 10", "expected 0..9");
  EXPECT_EQ(rec.count, 0);
}

TEST(Cifar, UnknownSplitAndMissingDirectory) {
  EXPECT_ERROR_WITH(load_cifar10("/nonexistent", "valid"), std::invalid_argument, "unknown split 'valid'");
  EXPECT_ERROR_WITH(load_cifar10("/nonexistent/cifar", "test"), std::runtime_error,
                    "/nonexistent/cifar/test_batch.bin", "file not found");
}
