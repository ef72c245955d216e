// TensorBoard event files without TensorFlow: TFRecord framing, masked CRC32C, hand-encoded protobuf.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/file_io.h"

namespace gsdiff::tb {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78); `crc` continues an earlier call (0 to start).
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t mask_crc(uint32_t crc);
// One TFRecord: uint64 length (little endian), masked CRC32C of those 8 bytes, data, masked CRC32C of data.
std::string frame_record(const std::string& data);

// Appends events to one fresh file dir/events.out.tfevents.<unix time>.<host>.<pid>[.<n>] (n when that name
// is taken, e.g. a resume in the same second). The first record is the file_version event "brain.Event:2".
// Messages (tensorflow/core/util/event.proto, summary.proto):
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
//             SessionLog session_log = 6 }
//   Summary { repeated Value value = 1 }
//   Value   { string tag = 1; float simple_value = 2; Image image = 4; TensorProto tensor = 8;
//             SummaryMetadata metadata = 9 }
//   Image   { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4 }
class EventWriter {
 public:
  explicit EventWriter(const std::string& dir);
  void add_scalar(const std::string& tag, double value, int64_t step);  // stored as float32 simple_value
  // PNG bytes of an image with `channels` 1 (grey) or 3 (RGB).
  void add_image(const std::string& tag, const std::string& png, int64_t height, int64_t width, int64_t channels,
                 int64_t step);
  // A scalar string tensor for the text plugin (rendered as Markdown).
  void add_text(const std::string& tag, const std::string& text, int64_t step);
  // SessionLog START at `step`: TensorBoard drops data of earlier files at steps >= step (used on resume, with
  // the first step the resumed run will write, so that steps a crashed run wrote past its checkpoint go).
  void add_session_start(int64_t step);
  const std::string& path() const { return path_; }

 private:
  void write_event(int64_t step, const std::string& fields);  // fields: encoded Event fields after wall_time/step
  void write_summary_value(int64_t step, const std::string& value);  // value: an encoded Summary.Value

  std::string path_;
  AppendFile out_;  // every record written or FileError naming the file and errno (ENOSPC, ...)
};

}  // namespace gsdiff::tb
