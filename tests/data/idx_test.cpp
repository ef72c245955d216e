// Tests for the IDX (MNIST / Fashion-MNIST) reader: plain vs gzip, header checks, real files.
#include <torch/torch.h>

#include "data/file_bytes.h"
#include "data/idx_parse.h"
#include "data/images.h"
#include "data_test_helpers.h"

using namespace gsdiff::data;
using gsdiff::testing::TempDir;
using gsdiff::testing::write_bytes;
using gsdiff::testing::write_gzip;

namespace {
void put32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}
std::vector<uint8_t> idx_images(uint32_t n, uint32_t rows = 28, uint32_t cols = 28) {
  std::vector<uint8_t> b;
  put32(b, 0x803);
  put32(b, n);
  put32(b, rows);
  put32(b, cols);
  for (uint32_t i = 0; i < n * rows * cols; ++i) b.push_back(uint8_t((i * 31 + 7) % 256));
  return b;
}
std::vector<uint8_t> idx_labels(uint32_t n) {
  std::vector<uint8_t> b;
  put32(b, 0x801);
  put32(b, n);
  for (uint32_t i = 0; i < n; ++i) b.push_back(uint8_t((i * 3) % 10));
  return b;
}
void write_set(const TempDir& d, bool gz, uint32_t ntrain = 5, uint32_t ntest = 3) {
  auto w = [&](const std::string& name, const std::vector<uint8_t>& b) {
    if (gz)
      write_gzip(d.file(name + ".gz"), b);
    else
      write_bytes(d.file(name), b);
  };
  w("train-images-idx3-ubyte", idx_images(ntrain));
  w("train-labels-idx1-ubyte", idx_labels(ntrain));
  w("t10k-images-idx3-ubyte", idx_images(ntest));
  w("t10k-labels-idx1-ubyte", idx_labels(ntest));
}
}  // namespace

TEST(Idx, PlainValuesByteForByte) {
  TempDir d;
  write_set(d, false);
  auto ds = load_mnist_idx(d.str(), "train");
  ASSERT_EQ(ds->size(), 5);
  EXPECT_EQ(ds->example_shape(), (std::vector<int64_t>{1, 28, 28}));
  // Image 2, row 3, col 4 is payload byte 2*784 + 3*28 + 4.
  uint32_t i = 2 * 784 + 3 * 28 + 4;
  EXPECT_EQ(ds->images()[2][0][3][4].item<uint8_t>(), uint8_t((i * 31 + 7) % 256));
  EXPECT_EQ(ds->labels()[4].item<int64_t>(), 2);
  EXPECT_EQ(load_mnist_idx(d.str(), "test")->size(), 3);
}

TEST(Idx, GzipAndPlainGiveTheSameTensors) {
  TempDir plain, gz;
  write_set(plain, false);
  write_set(gz, true);
  for (const char* split : {"train", "test"}) {
    auto a = load_mnist_idx(plain.str(), split), b = load_mnist_idx(gz.str(), split);
    EXPECT_TRUE(torch::equal(a->images(), b->images())) << split;
    EXPECT_TRUE(torch::equal(a->labels(), b->labels())) << split;
  }
}

TEST(Idx, BadMagicSaysWhatWasExpected) {
  auto b = idx_labels(4);
  EXPECT_ERROR_WITH(parse_idx(b.data(), b.size(), kIdxImagesMagic, "lab"), std::runtime_error, "lab",
                    "bad IDX magic 0x00000801", "expected 0x00000803");
}

TEST(Idx, TruncatedAndTrailingPayload) {
  auto b = idx_images(2);
  b.pop_back();
  EXPECT_ERROR_WITH(parse_idx(b.data(), b.size(), kIdxImagesMagic, "img"), std::runtime_error, "img",
                    "1567 bytes, expected 1568", "truncated");
  b.push_back(0);
  b.push_back(0);
  EXPECT_ERROR_WITH(parse_idx(b.data(), b.size(), kIdxImagesMagic, "img"), std::runtime_error, "trailing bytes");
  std::vector<uint8_t> tiny = {0, 0, 8};
  EXPECT_ERROR_WITH(parse_idx(tiny.data(), tiny.size(), kIdxImagesMagic, "img"), std::runtime_error, "too short");
  auto hdr = idx_images(1);
  hdr.resize(10);
  EXPECT_ERROR_WITH(parse_idx(hdr.data(), hdr.size(), kIdxImagesMagic, "img"), std::runtime_error,
                    "shorter than the IDX header of 16 bytes");
}

TEST(Idx, WrongDimensionsAndCounts) {
  TempDir d;
  write_set(d, false);
  write_bytes(d.file("t10k-images-idx3-ubyte"), idx_images(3, 32, 32));
  EXPECT_ERROR_WITH(load_mnist_idx(d.str(), "test"), std::runtime_error, "t10k-images-idx3-ubyte",
                    "dimensions 3x32x32", "expected N x 28 x 28");
  write_bytes(d.file("t10k-images-idx3-ubyte"), idx_images(4));
  EXPECT_ERROR_WITH(load_mnist_idx(d.str(), "test"), std::runtime_error, "t10k-labels-idx1-ubyte",
                    "3 labels, expected 4");
  auto lab = idx_labels(4);
  lab.back() = 11;
  write_bytes(d.file("t10k-labels-idx1-ubyte"), lab);
  EXPECT_ERROR_WITH(load_mnist_idx(d.str(), "test"), std::runtime_error, "label 11 at index 3", "expected 0..9");
}

TEST(Idx, MissingEmptyAndCorruptGzipFiles) {
  TempDir d;
  EXPECT_ERROR_WITH(load_mnist_idx(d.str(), "train"), std::runtime_error, "train-images-idx3-ubyte.gz",
                    "file not found");
  write_set(d, true);
  write_bytes(d.file("train-labels-idx1-ubyte.gz"), {});
  EXPECT_ERROR_WITH(load_mnist_idx(d.str(), "train"), std::runtime_error, "train-labels-idx1-ubyte.gz",
                    "empty file");
  // A gzip stream cut in half must not be read as a short file silently.
  TempDir e;
  write_gzip(e.file("full.gz"), idx_images(20));
  auto whole = gsdiff::testing::read_text(e.file("full.gz"));
  gsdiff::testing::write_text(e.file("cut.gz"), whole.substr(0, whole.size() / 2));
  EXPECT_ERROR_WITH(read_file_bytes(e.file("cut.gz")), std::runtime_error, "cut.gz", "gzip");
  EXPECT_ERROR_WITH(read_file_bytes(e.str()), std::runtime_error, "is a directory");
  EXPECT_ERROR_WITH(load_mnist_idx(d.str(), "valid"), std::invalid_argument, "unknown split 'valid'");
}

TEST(Idx, RealDebianFashionMnistIfPresent) {
  const std::string root = kDefaultFashionMnistRoot;
  if (!file_exists(root + "/train-images-idx3-ubyte.gz") && !file_exists(root + "/train-images-idx3-ubyte"))
    GTEST_SKIP() << "Fashion-MNIST not installed at " << root << " (apt install dataset-fashion-mnist)";
  auto train = load_mnist_idx(root, "train");
  auto test = load_mnist_idx(root, "test");
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(train->example_shape(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(train->labels().min().item<int64_t>(), 0);
  EXPECT_EQ(train->labels().max().item<int64_t>(), 9);
  // Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
  EXPECT_TRUE(torch::equal(torch::bincount(train->labels()), torch::full({10}, 6000, torch::kInt64)));
  EXPECT_TRUE(torch::equal(torch::bincount(test->labels()), torch::full({10}, 1000, torch::kInt64)));
}
