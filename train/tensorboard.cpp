// TensorBoard event writer: CRC32C, TFRecord framing and the protobuf wire format of Event/Summary by hand.
#include "train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace gsdiff::tb {

namespace {

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

void put_le(std::string& s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back(char((v >> (8 * i)) & 0xFF));
}

// Protobuf wire format (developers.google.com/protocol-buffers/docs/encoding): key = field << 3 | wire type;
// 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32; little endian throughout.
void varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(char((v & 0x7F) | 0x80));
    v >>= 7;
  }
  s.push_back(char(v));
}
void key(std::string& s, int field, int wire) { varint(s, uint64_t(field) << 3 | uint64_t(wire)); }
void field_varint(std::string& s, int field, int64_t v) {
  key(s, field, 0);
  varint(s, uint64_t(v));  // negative int32/int64 are sign-extended to 10 bytes, as protobuf does
}
void field_double(std::string& s, int field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  key(s, field, 1);
  put_le(s, bits, 8);
}
void field_float(std::string& s, int field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  key(s, field, 5);
  put_le(s, bits, 4);
}
void field_bytes(std::string& s, int field, const std::string& v) {
  key(s, field, 2);
  varint(s, v.size());
  s += v;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto& t = crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = t[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t mask_crc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::string frame_record(const std::string& data) {
  std::string r;
  r.reserve(data.size() + 16);
  put_le(r, data.size(), 8);
  put_le(r, mask_crc(crc32c(r.data(), 8)), 4);
  r += data;
  put_le(r, mask_crc(crc32c(data.data(), data.size())), 4);
  return r;
}

EventWriter::EventWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw_file_error("tensorboard directory", dir, "creating it", ec.value());
  const std::string base = dir + "/events.out.tfevents." + std::to_string(int64_t(unix_now())) + "." + host_name() +
                           "." + std::to_string(getpid());
  path_ = base;
  for (int n = 1; std::filesystem::exists(path_); ++n) path_ = base + "." + std::to_string(n);
  out_ = AppendFile(path_, "tensorboard events", /*truncate=*/true);
  std::string fields;
  field_bytes(fields, 3, "brain.Event:2");
  write_event(0, fields);
}

void EventWriter::write_event(int64_t step, const std::string& fields) {
  std::string ev;
  field_double(ev, 1, unix_now());
  if (step != 0) field_varint(ev, 2, step);  // proto3: a zero step is the default and is left out
  ev += fields;
  out_.append(frame_record(ev));
}

void EventWriter::write_summary_value(int64_t step, const std::string& value) {
  std::string summary, fields;
  field_bytes(summary, 1, value);  // Summary.value
  field_bytes(fields, 5, summary);  // Event.summary
  write_event(step, fields);
}

void EventWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  std::string v;
  field_bytes(v, 1, tag);
  field_float(v, 2, float(value));
  write_summary_value(step, v);
}

void EventWriter::add_image(const std::string& tag, const std::string& png, int64_t height, int64_t width,
                            int64_t channels, int64_t step) {
  std::string img, v;
  field_varint(img, 1, height);
  field_varint(img, 2, width);
  field_varint(img, 3, channels);  // colorspace: 1 grey, 3 RGB
  field_bytes(img, 4, png);
  field_bytes(v, 1, tag);
  field_bytes(v, 4, img);
  write_summary_value(step, v);
}

void EventWriter::add_text(const std::string& tag, const std::string& text, int64_t step) {
  // SummaryMetadata { PluginData plugin_data = 1 { string plugin_name = 1 } }
  std::string plugin, meta, tensor, v;
  field_bytes(plugin, 1, "text");
  field_bytes(meta, 1, plugin);
  // TensorProto { DataType dtype = 1 (DT_STRING = 7); TensorShapeProto tensor_shape = 2 (scalar: empty);
  //               repeated bytes string_val = 8 }
  field_varint(tensor, 1, 7);
  field_bytes(tensor, 2, "");
  field_bytes(tensor, 8, text);
  field_bytes(v, 1, tag);
  field_bytes(v, 8, tensor);
  field_bytes(v, 9, meta);
  write_summary_value(step, v);
}

void EventWriter::add_session_start(int64_t step) {
  std::string log, fields;
  field_varint(log, 1, 1);  // SessionLog { SessionStatus status = 1 } with START = 1
  field_bytes(fields, 6, log);
  write_event(step, fields);
}

}  // namespace gsdiff::tb
