// gsdiff's TensorBoard event files read by the tensorboard package's own EventAccumulator (tests/tools/tb_read.py,
// GSDIFF_PYTHON) agree, record for record, with the independent reader in tests/train/tb_reader.h.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <unistd.h>

#include "tools/cli_test_util.h"
#include "train/tb_reader.h"

namespace {

namespace fs = std::filesystem;

struct Logged {  // what our reader decodes from every event file of a directory
  std::map<std::string, std::vector<std::pair<int64_t, float>>> scalars;
  std::map<std::string, std::vector<std::pair<int64_t, std::string>>> images, texts;  // PNG bytes, text
};

Logged read_ours(const std::string& dir) {
  Logged l;
  for (const auto& f : gsdiff::testing::event_files(dir)) {
    auto scan = gsdiff::testing::scan_records(gsdiff::testing::slurp(f));
    EXPECT_EQ(scan.error, "") << f;
    for (const auto& rec : scan.records) {
      auto e = gsdiff::testing::decode_event(rec);
      for (const auto& v : e.values) {
        if (v.has_simple) l.scalars[v.tag].push_back({e.step, v.simple});
        if (v.has_image) l.images[v.tag].push_back({e.step, v.png});
        if (v.plugin == "text") l.texts[v.tag].push_back({e.step, v.text});
      }
    }
  }
  return l;
}

std::string hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string h;
  for (unsigned char c : bytes) h += d[c >> 4], h += d[c & 15];
  return h;
}

// tensorboard's reading of the directory, or a skip naming what is missing.
bool read_theirs(const std::string& dir, nlohmann::json& out) {
  const std::string py = GSDIFF_PYTHON;
  if (std::system((py + " -c 'import tensorboard' >/dev/null 2>&1").c_str()) != 0) return false;
  const std::string json_path = dir + "/tensorboard-read.json";
  auto r = gsdiff::testing::run_shell(py + " " + GSDIFF_SOURCE_DIR + "/tests/tools/tb_read.py " + dir + " > " + json_path);
  EXPECT_EQ(r.rc, 0) << r.out;
  out = nlohmann::json::parse(gsdiff::testing::slurp(json_path));
  return true;
}

void expect_same(const Logged& ours, const nlohmann::json& theirs) {
  ASSERT_EQ(theirs["scalars"].size(), ours.scalars.size()) << theirs["scalars"].dump();
  for (const auto& [tag, rows] : ours.scalars) {
    const auto& t = theirs["scalars"].at(tag);
    ASSERT_EQ(t.size(), rows.size()) << tag;
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(t[i][0].get<int64_t>(), rows[i].first) << tag;
      EXPECT_EQ(float(t[i][1].get<double>()), rows[i].second) << tag << " step " << rows[i].first;  // float32 both
    }
  }
  ASSERT_EQ(theirs["images"].size(), ours.images.size());
  for (const auto& [tag, rows] : ours.images) {
    const auto& t = theirs["images"].at(tag);
    ASSERT_EQ(t.size(), rows.size()) << tag;
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(t[i][0].get<int64_t>(), rows[i].first);
      EXPECT_EQ(t[i][3].get<std::string>(), hex(rows[i].second)) << tag;  // the PNG, byte for byte
    }
  }
  ASSERT_EQ(theirs["texts"].size(), ours.texts.size());
  for (const auto& [tag, rows] : ours.texts) {
    const auto& t = theirs["texts"].at(tag);
    ASSERT_EQ(t.size(), rows.size()) << tag;
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(t[i][0].get<int64_t>(), rows[i].first);
      EXPECT_EQ(t[i][1].get<std::string>(), rows[i].second) << tag;
    }
  }
}

TEST(CliTensorBoardReader, ScalarsAndImageAsTensorBoardReadsThem) {
  auto out = (fs::temp_directory_path() / ("gsdiff_cli_tb_reader_" + std::to_string(::getpid()))).string();
  fs::remove_all(out);
  const std::string cfg = std::string(GSDIFF_SOURCE_DIR) + "/configs/quickstart.json";
  auto r = gsdiff::testing::run_gsdiff(
      "train --config " + cfg + " --set train.steps=3 --set data.batch_size=4 --set train.eval_every=0" +
      " --set sample.num=4 --set sample.steps=3 --set train.log_every=1 --threads 1 --quiet --out " + out);
  ASSERT_EQ(r.rc, 0) << r.out;
  nlohmann::json theirs;
  if (!read_theirs(out + "/tb", theirs)) GTEST_SKIP() << GSDIFF_PYTHON << " has no tensorboard: run scripts/setup.sh";
  auto ours = read_ours(out + "/tb");
  ASSERT_EQ(ours.scalars.at("train/loss").size(), 3u);  // one per step
  ASSERT_EQ(ours.images.at("samples").size(), 1u);
  EXPECT_EQ(ours.images.at("samples")[0].second, gsdiff::testing::slurp(out + "/samples-3.png"));
  expect_same(ours, theirs);
  EXPECT_GT(theirs["images"]["samples"][0][1].get<int64_t>(), 0);  // tensorboard's width of the grid
}

TEST(CliTensorBoardReader, TextSamplesAsTensorBoardReadsThem) {
  auto d = fs::temp_directory_path() / ("gsdiff_cli_tb_reader_text_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  const std::string dir = d.string(), corpus = dir + "/t8.txt";
  {
    std::ofstream f(corpus);
    for (int i = 0; i < 200; ++i) f << "the quick brown fox jumps over the lazy dog ";
  }
  auto r = gsdiff::testing::run_gsdiff(
      "train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/text8-absorbing.json --set data.path=" + corpus +
      " --set data.train_frac=0.8 --set data.valid_frac=0.9 --set data.seq_len=16 --set data.batch_size=4"
      " --set model.dim=16 --set model.depth=1 --set model.num_heads=2 --set model.cond_dim=8 --set train.steps=2"
      " --set train.eval_every=0 --set train.log_every=1 --set sample.num=2 --set sample.steps=2 --threads 1 --quiet"
      " --out " + dir + "/run");
  ASSERT_EQ(r.rc, 0) << r.out;
  nlohmann::json theirs;
  if (!read_theirs(dir + "/run/tb", theirs)) GTEST_SKIP() << GSDIFF_PYTHON << " has no tensorboard: run scripts/setup.sh";
  auto ours = read_ours(dir + "/run/tb");
  ASSERT_EQ(ours.texts.at("samples").size(), 1u);
  const auto text = gsdiff::testing::slurp(dir + "/run/samples-2.txt");
  EXPECT_EQ(ours.texts.at("samples")[0].second, text.substr(0, 16) + "\n\n" + text.substr(17, 16) + "\n\n");
  expect_same(ours, theirs);
}

}  // namespace
