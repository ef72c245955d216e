// `gsdiff train` writes TensorBoard events with the sample grid as a PNG image (text samples through the
// text plugin); plain progress lines off a TTY.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "tools/cli_test_util.h"
#include "train/tb_reader.h"

namespace {

uint32_t be32(const std::string& s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 | uint32_t(uint8_t(s[at + 2])) << 8 |
         uint32_t(uint8_t(s[at + 3]));
}

TEST(CliTensorBoard, SampleGridImageAndPlainProgressLines) {
  auto out = (std::filesystem::temp_directory_path() / ("gsdiff_cli_tensorboard_" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(out);
  const std::string cfg = std::string(GSDIFF_SOURCE_DIR) + "/configs/quickstart.json";
  auto r = gsdiff::testing::run_gsdiff(
      "train --config " + cfg + " --set train.steps=3 --set data.batch_size=4 --set train.eval_every=0" +
      " --set sample.num=4 --set sample.steps=3 --set train.log_every=1 --threads 1 --out " + out);
  ASSERT_EQ(r.rc, 0) << r.out;
  // Output to a pipe: the periodic lines, no carriage-return bar.
  EXPECT_NE(r.out.find("step 3/3"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\r'), std::string::npos) << r.out;

  const auto png = gsdiff::testing::slurp(out + "/samples-3.png");
  ASSERT_GT(png.size(), 33u);
  ASSERT_EQ(png.substr(1, 3), "PNG");
  auto files = gsdiff::testing::event_files(out + "/tb");
  ASSERT_EQ(files.size(), 1u);
  auto scan = gsdiff::testing::scan_records(gsdiff::testing::slurp(files[0]));
  ASSERT_EQ(scan.error, "");
  int images = 0, losses = 0;
  for (const auto& rec : scan.records) {
    auto e = gsdiff::testing::decode_event(rec);
    for (const auto& v : e.values) {
      losses += v.tag == "train/loss";
      if (!v.has_image) continue;
      ++images;
      EXPECT_EQ(v.tag, "samples");
      EXPECT_EQ(e.step, 3);
      EXPECT_EQ(v.png, png);  // the very bytes of the grid file
      EXPECT_EQ(v.width, int64_t(be32(png, 16)));   // IHDR width
      EXPECT_EQ(v.height, int64_t(be32(png, 20)));  // IHDR height
      EXPECT_EQ(v.colorspace, uint8_t(png[25]) == 0 ? 1 : 3);  // PNG colour type 0 grey, 2 RGB
    }
  }
  EXPECT_EQ(images, 1);
  EXPECT_EQ(losses, 3);
}

TEST(CliTensorBoard, TextSamplesThroughTheTextPlugin) {
  auto d = std::filesystem::temp_directory_path() / ("gsdiff_cli_tensorboard_text_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  const std::string dir = d.string(), corpus = dir + "/t8.txt";
  {
    std::ofstream f(corpus);
    for (int i = 0; i < 200; ++i) f << "the quick brown fox jumps over the lazy dog ";
  }
  auto r = gsdiff::testing::run_gsdiff(
      "train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/text8-gaussian.json --set data.path=" + corpus +
      " --set data.train_frac=0.8 --set data.valid_frac=0.9 --set data.seq_len=16 --set data.batch_size=4"
      " --set model.dim=16 --set model.depth=1 --set model.num_heads=2 --set model.cond_dim=8 --set train.steps=2"
      " --set train.eval_every=0 --set train.log_every=1 --set sample.num=2 --set sample.steps=2 --threads 1 --quiet"
      " --out " + dir + "/run");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto text = gsdiff::testing::slurp(dir + "/run/samples-2.txt");
  ASSERT_EQ(text.size(), 2u * 17u);  // two lines of 16 characters
  auto files = gsdiff::testing::event_files(dir + "/run/tb");
  ASSERT_EQ(files.size(), 1u);
  auto scan = gsdiff::testing::scan_records(gsdiff::testing::slurp(files[0]));
  ASSERT_EQ(scan.error, "");
  int texts = 0;
  for (const auto& rec : scan.records) {
    auto e = gsdiff::testing::decode_event(rec);
    for (const auto& v : e.values) {
      if (v.plugin != "text") continue;
      ++texts;
      EXPECT_EQ(v.tag, "samples");
      EXPECT_EQ(e.step, 2);
      // Markdown: one paragraph per sample.
      EXPECT_EQ(v.text, text.substr(0, 16) + "\n\n" + text.substr(17, 16) + "\n\n");
    }
  }
  EXPECT_EQ(texts, 1);
}

}  // namespace
