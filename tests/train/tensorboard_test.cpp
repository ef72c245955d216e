// TensorBoard event files: CRC32C check value, framing, decoded trainer scalars equal metrics.jsonl, resume.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/registry.h"
#include "tb_reader.h"
#include "train/tensorboard.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace gsdiff {
namespace {

using testing::TbEvent;

std::vector<TbEvent> read_events(const std::string& path) {
  auto scan = testing::scan_records(testing::slurp(path));
  EXPECT_EQ(scan.error, "") << path;
  std::vector<TbEvent> out;
  for (const auto& r : scan.records) out.push_back(testing::decode_event(r));
  return out;
}

TEST(TensorBoard, Crc32cCheckValueAndMask) {
  const std::string s = "123456789";
  EXPECT_EQ(tb::crc32c(s.data(), s.size()), 0xE3069283u);  // the standard CRC-32C check value
  EXPECT_EQ(testing::crc32c_bitwise(s), 0xE3069283u);      // the reader's own bitwise CRC agrees
  EXPECT_EQ(tb::crc32c(s.data() + 4, 5, tb::crc32c(s.data(), 4)), 0xE3069283u);  // continued in two parts
  EXPECT_EQ(tb::crc32c("", 0), 0u);
  const uint32_t c = 0xE3069283u;
  EXPECT_EQ(tb::mask_crc(c), uint32_t(((c >> 15) | (c << 17)) + 0xa282ead8u));
}

TEST(TensorBoard, RecordFramingByteLayout) {
  const std::string data = "hello";
  auto rec = tb::frame_record(data);
  ASSERT_EQ(rec.size(), 8u + 4u + data.size() + 4u);
  EXPECT_EQ(testing::le(rec, 0, 8), data.size());
  EXPECT_EQ(rec.substr(12, data.size()), data);
  EXPECT_EQ(uint32_t(testing::le(rec, 8, 4)), testing::masked(testing::crc32c_bitwise(rec.substr(0, 8))));
  EXPECT_EQ(uint32_t(testing::le(rec, 17, 4)), testing::masked(testing::crc32c_bitwise(data)));
}

TEST(TensorBoard, WriterEventsDecode) {
  auto dir = testing::fresh_dir("tb_writer");
  std::string png(300, '\0');
  for (size_t i = 0; i < png.size(); ++i) png[i] = char(i * 13);  // any bytes, including zeros and >= 0x80
  std::string path;
  {
    tb::EventWriter w(dir);
    path = w.path();
    w.add_scalar("a/b", 0.1, 300);  // step >= 128: a two-byte varint
    w.add_scalar("neg", -2.5e-7, 1);
    w.add_image("img", png, 7, 11, 3, 2);
    w.add_text("txt", "hello *world*", 3);
    w.add_session_start(4);
  }
  EXPECT_NE(path.find("/events.out.tfevents."), std::string::npos);
  auto ev = read_events(path);
  ASSERT_EQ(ev.size(), 6u);
  EXPECT_EQ(ev[0].file_version, "brain.Event:2");
  EXPECT_EQ(ev[0].step, 0);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& e : ev) EXPECT_TRUE(e.wall_time > now - 60 && e.wall_time <= now) << e.wall_time;
  ASSERT_EQ(ev[1].values.size(), 1u);
  EXPECT_EQ(ev[1].step, 300);
  EXPECT_EQ(ev[1].values[0].tag, "a/b");
  EXPECT_TRUE(ev[1].values[0].has_simple);
  EXPECT_EQ(ev[1].values[0].simple, 0.1f);
  EXPECT_EQ(ev[2].values[0].simple, -2.5e-7f);
  const auto& im = ev[3].values[0];
  EXPECT_EQ(ev[3].step, 2);
  EXPECT_TRUE(im.has_image && !im.has_simple);
  EXPECT_EQ(im.height, 7);
  EXPECT_EQ(im.width, 11);
  EXPECT_EQ(im.colorspace, 3);
  EXPECT_EQ(im.png, png);
  EXPECT_EQ(ev[4].values[0].plugin, "text");
  EXPECT_EQ(ev[4].values[0].text, "hello *world*");
  EXPECT_EQ(ev[5].session_status, 1);
  EXPECT_EQ(ev[5].step, 4);

  // A second writer in the same folder (same second, same pid) gets its own file.
  tb::EventWriter w2(dir);
  EXPECT_NE(w2.path(), path);
  EXPECT_EQ(testing::event_files(dir).size(), 2u);
}

TEST(TensorBoard, TruncatedOrCorruptRecordDetected) {
  auto dir = testing::fresh_dir("tb_trunc");
  std::string path;
  {
    tb::EventWriter w(dir);
    path = w.path();
    for (int s = 1; s <= 3; ++s) w.add_scalar("x", s, s);
  }
  auto bytes = testing::slurp(path);
  auto whole = testing::scan_records(bytes);
  ASSERT_EQ(whole.error, "");
  ASSERT_EQ(whole.records.size(), 4u);
  size_t last = 0;  // offset of the last record
  for (size_t i = 0; i + 1 < whole.records.size(); ++i) last += 16 + whole.records[i].size();
  const size_t n = whole.records.back().size();
  for (size_t keep : {size_t(5), size_t(12 + n / 2), size_t(12 + n + 3)}) {  // cut in the header, data, CRC
    auto r = testing::scan_records(bytes.substr(0, last + keep));
    EXPECT_NE(r.error.find("truncated"), std::string::npos) << keep << ": " << r.error;
    EXPECT_EQ(r.records.size(), 3u) << keep;  // the whole records before it still read
  }
  auto flipped = bytes;
  flipped[bytes.size() - 6] ^= 0x01;  // a bit in the last record's data
  EXPECT_NE(testing::scan_records(flipped).error.find("data CRC mismatch"), std::string::npos);
}

class TensorBoardTrainer : public ::testing::Test {
 protected:
  void SetUp() override {
    register_builtins();
    testing::register_test_models();
  }
  static Config cfg(int64_t steps, bool tensorboard = true) {
    auto j = testing::gmm_config(steps, 16);
    j["train"]["log_every"] = 1;
    j["train"]["eval_every"] = 4;
    j["train"]["tensorboard"] = tensorboard;
    j["eval"] = {{"limit", 64}, {"batch_size", 64}};
    return parse_config(j);
  }
  static TrainerEnv env(const std::string& dir, const std::string& resume = "") {
    return testing::quiet_env(dir, resume);
  }
  // (tag, step) -> value over every event file of dir/tb; counts in `seen`.
  static std::map<std::pair<std::string, int64_t>, float> scalars(const std::string& dir,
                                                                  std::map<std::pair<std::string, int64_t>, int>& seen) {
    std::map<std::pair<std::string, int64_t>, float> out;
    for (const auto& f : testing::event_files(dir + "/tb"))
      for (const auto& e : read_events(f))
        for (const auto& v : e.values)
          if (v.has_simple) out[{v.tag, e.step}] = v.simple, ++seen[{v.tag, e.step}];
    return out;
  }
};

TEST_F(TensorBoardTrainer, ScalarsEqualMetricsJsonl) {
  auto dir = testing::fresh_dir("tb_run");
  {
    Trainer t(cfg(8), env(dir));
    t.run();
  }
  auto files = testing::event_files(dir + "/tb");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_events(files[0]).at(0).file_version, "brain.Event:2");
  std::map<std::pair<std::string, int64_t>, int> seen;
  auto got = scalars(dir, seen);
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  size_t expected = 0;
  int validations = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    const int64_t step = j.at("step");
    if (j.contains("validation")) {
      ++validations;
      for (const char* k : {"bound", "stderr"}) {
        auto key = std::make_pair(std::string("validation/") + k, step);
        ASSERT_TRUE(got.count(key)) << key.first << " at " << step;
        EXPECT_EQ(got[key], float(j["validation"][k].get<double>())) << key.first << " at " << step;
        ++expected;
      }
      continue;
    }
    for (const char* k : {"loss", "bits", "bits_step", "lr", "grad_norm", "examples_per_s"}) {
      auto key = std::make_pair(std::string("train/") + k, step);
      if (!j[k].is_number()) {  // no bits_* keys when a step has no bound: then no scalar either
        EXPECT_EQ(got.count(key), 0u) << key.first << " at " << step;
        continue;
      }
      ASSERT_TRUE(got.count(key)) << key.first << " at " << step;
      EXPECT_EQ(got[key], float(j[k].get<double>())) << key.first << " at " << step;
      ++expected;
    }
  }
  EXPECT_EQ(validations, 2);  // steps 4 and 8
  EXPECT_EQ(got.size(), expected);  // nothing beyond what metrics.jsonl holds
  for (const auto& kv : seen) EXPECT_EQ(kv.second, 1) << kv.first.first << " at " << kv.first.second;
}

TEST_F(TensorBoardTrainer, ResumeWritesEveryStepOnce) {
  auto dir = testing::fresh_dir("tb_resume");
  const int64_t n = 5;
  {
    Trainer t(cfg(2 * n), env(dir));
    t.run(n);  // ends with a checkpoint at step n
  }
  {
    Trainer t(cfg(2 * n), env(dir, "auto"));
    ASSERT_EQ(t.step_count(), n);
    t.run();
  }
  auto files = testing::event_files(dir + "/tb");
  ASSERT_EQ(files.size(), 2u);
  std::map<std::pair<std::string, int64_t>, int> seen;
  scalars(dir, seen);
  std::set<int64_t> steps;
  for (const auto& kv : seen)
    if (kv.first.first == "train/loss") {
      EXPECT_EQ(kv.second, 1) << "step " << kv.first.second;
      steps.insert(kv.first.second);
    }
  std::set<int64_t> want;
  for (int64_t s = 1; s <= 2 * n; ++s) want.insert(s);
  EXPECT_EQ(steps, want);
  // The resumed file opens with a SessionLog START at the first step it writes.
  std::vector<TbEvent> second;
  for (const auto& f : files) {
    auto ev = read_events(f);
    if (ev.size() > 1 && ev[1].session_status == 1) second = ev;
  }
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(second[1].step, n + 1);
  for (const auto& e : second)
    for (const auto& v : e.values) EXPECT_GT(e.step, n) << v.tag;
}

TEST_F(TensorBoardTrainer, ConfigKeyTurnsItOff) {
  auto dir = testing::fresh_dir("tb_off");
  Trainer t(cfg(2, false), env(dir));
  t.run();
  EXPECT_FALSE(std::filesystem::exists(dir + "/tb"));
  EXPECT_EQ(t.tensorboard(), nullptr);
  EXPECT_TRUE(parse_config(testing::gmm_config(1)).train.tensorboard());  // on by default
}

}  // namespace
}  // namespace gsdiff
