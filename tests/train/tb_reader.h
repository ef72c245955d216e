// Test-side TensorBoard event-file reader, written apart from train/tensorboard.cpp: bitwise CRC32C, record
// checks, a generic protobuf field walker and the Event / Summary.Value fields the tests look at.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace gsdiff::testing {

// CRC-32C bit by bit (no table): reflected Castagnoli polynomial.
inline uint32_t crc32c_bitwise(const std::string& s) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : (crc >> 1);
  }
  return crc ^ 0xFFFFFFFFu;
}
inline uint32_t masked(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

inline uint64_t le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | uint8_t(s[at + i]);
  return v;
}

struct RecordScan {
  std::vector<std::string> records;
  std::string error;  // "" when every record was whole and both CRCs matched
};

inline RecordScan scan_records(const std::string& bytes) {
  RecordScan r;
  size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 12) return r.error = "truncated header at " + std::to_string(at), r;
    uint64_t n = le(bytes, at, 8);
    if (uint32_t(le(bytes, at + 8, 4)) != masked(crc32c_bitwise(bytes.substr(at, 8))))
      return r.error = "length CRC mismatch at " + std::to_string(at), r;
    if (bytes.size() - at - 12 < n + 4) return r.error = "truncated record at " + std::to_string(at), r;
    std::string data = bytes.substr(at + 12, n);
    if (uint32_t(le(bytes, at + 12 + n, 4)) != masked(crc32c_bitwise(data)))
      return r.error = "data CRC mismatch at " + std::to_string(at), r;
    r.records.push_back(data);
    at += 16 + n;
  }
  return r;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// One protobuf field: wire 0 (varint in `u`), 1 (fixed64 in `u`), 2 (bytes in `s`), 5 (fixed32 in `u`).
struct Field {
  int wire = 0;
  uint64_t u = 0;
  std::string s;
};
using Message = std::multimap<int, Field>;

inline Message parse_message(const std::string& b) {
  Message m;
  size_t at = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      if (at >= b.size() || shift > 63) throw std::runtime_error("bad varint");
      uint8_t c = uint8_t(b[at++]);
      v |= uint64_t(c & 0x7F) << shift;
      if (!(c & 0x80)) return v;
    }
  };
  while (at < b.size()) {
    uint64_t k = varint();
    Field f;
    f.wire = int(k & 7);
    if (f.wire == 0) f.u = varint();
    else if (f.wire == 1 || f.wire == 5) {
      int n = f.wire == 1 ? 8 : 4;
      if (at + n > b.size()) throw std::runtime_error("short fixed field");
      f.u = le(b, at, n);
      at += n;
    } else if (f.wire == 2) {
      uint64_t n = varint();
      if (at + n > b.size()) throw std::runtime_error("short bytes field");
      f.s = b.substr(at, n);
      at += n;
    } else {
      throw std::runtime_error("unexpected wire type " + std::to_string(f.wire));
    }
    m.emplace(int(k >> 3), f);
  }
  return m;
}

struct TbValue {
  std::string tag;
  bool has_simple = false;
  float simple = 0;
  bool has_image = false;
  int64_t height = 0, width = 0, colorspace = 0;
  std::string png;
  std::string plugin, text;  // text plugin: metadata.plugin_data.plugin_name and the string tensor's value
};

struct TbEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  int session_status = 0;  // SessionLog.status (START = 1), 0 when absent
  std::vector<TbValue> values;
};

inline const Field* one(const Message& m, int field) {
  auto it = m.find(field);
  return it == m.end() ? nullptr : &it->second;
}

inline TbEvent decode_event(const std::string& rec) {
  TbEvent e;
  auto m = parse_message(rec);
  if (auto f = one(m, 1)) std::memcpy(&e.wall_time, &f->u, 8);
  if (auto f = one(m, 2)) e.step = int64_t(f->u);
  if (auto f = one(m, 3)) e.file_version = f->s;
  if (auto f = one(m, 6))
    if (auto st = one(parse_message(f->s), 1)) e.session_status = int(st->u);
  if (auto f = one(m, 5)) {
    auto summary = parse_message(f->s);
    for (auto [it, end] = summary.equal_range(1); it != end; ++it) {
      auto v = parse_message(it->second.s);
      TbValue out;
      if (auto t = one(v, 1)) out.tag = t->s;
      if (auto s = one(v, 2)) {
        uint32_t bits = uint32_t(s->u);
        std::memcpy(&out.simple, &bits, 4);
        out.has_simple = true;
      }
      if (auto img = one(v, 4)) {
        auto im = parse_message(img->s);
        out.has_image = true;
        if (auto x = one(im, 1)) out.height = int64_t(x->u);
        if (auto x = one(im, 2)) out.width = int64_t(x->u);
        if (auto x = one(im, 3)) out.colorspace = int64_t(x->u);
        if (auto x = one(im, 4)) out.png = x->s;
      }
      if (auto md = one(v, 9))
        if (auto pd = one(parse_message(md->s), 1))
          if (auto name = one(parse_message(pd->s), 1)) out.plugin = name->s;
      if (auto tensor = one(v, 8)) {
        auto tm = parse_message(tensor->s);
        if (auto sv = one(tm, 8)) out.text = sv->s;
      }
      e.values.push_back(out);
    }
  }
  return e;
}

// Event files of a folder (names containing "tfevents"), sorted by name.
inline std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> out;
  if (!std::filesystem::exists(dir)) return out;
  for (auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().find("tfevents") != std::string::npos) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace gsdiff::testing
