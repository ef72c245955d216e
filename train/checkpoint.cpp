// Checked, atomic checkpoint files (envelope + fsync + rename) and checkpoint directory helpers.
#include "train/checkpoint.h"

#include "core/file_io.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace gsdiff {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'G', 'S', 'D', 'I', 'F', 'F', 'C', 'K'};
constexpr size_t kHeader = 8 + 4 + 8 + 4;

template <typename T>
void put(std::string& s, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) s.push_back(char((uint64_t(v) >> (8 * i)) & 0xff));
}
template <typename T>
T get(const std::string& s, size_t off) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t(uint8_t(s[off + i])) << (8 * i);
  return T(v);
}

uint32_t crc_of(const std::string& s, size_t off, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = reinterpret_cast<const Bytef*>(s.data() + off);
  while (n > 0) {  // zlib takes uInt lengths
    uInt chunk = uInt(std::min<size_t>(n, 1u << 30));
    crc = crc32(crc, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return uint32_t(crc);
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw CheckpointError("checkpoint '" + path + "': " + what);
}

}  // namespace

void write_checkpoint_file(const std::string& path, const std::string& payload) {
  std::string head(kMagic, 8);
  put<uint32_t>(head, kCheckpointVersion);
  put<uint64_t>(head, payload.size());
  put<uint32_t>(head, crc_of(payload, 0, payload.size()));
  // tmp file beside it, write, fsync, close, rename, fsync dir; errors name the file and errno (ENOSPC, ...)
  write_file_atomic(path, {head, payload}, "checkpoint");
}

std::string read_checkpoint_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, "is a directory, not a checkpoint file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < kHeader) fail(path, "truncated header (" + std::to_string(bytes.size()) + " bytes)");
  if (std::memcmp(bytes.data(), kMagic, 8) != 0) fail(path, "bad magic (not a gsdiff checkpoint)");
  auto version = get<uint32_t>(bytes, 8);
  if (version != kCheckpointVersion)
    fail(path, "unsupported version " + std::to_string(version) + " (expected " + std::to_string(kCheckpointVersion) + ")");
  auto len = get<uint64_t>(bytes, 12);
  auto crc = get<uint32_t>(bytes, 20);
  if (bytes.size() - kHeader != len)
    fail(path, std::string(bytes.size() - kHeader < len ? "truncated" : "extra bytes") + ": payload length " +
                   std::to_string(bytes.size() - kHeader) + " bytes, header says " + std::to_string(len));
  if (crc_of(bytes, kHeader, len) != crc) fail(path, "CRC32 mismatch (file corrupted)");
  return bytes.substr(kHeader);
}

std::string archive_to_bytes(torch::serialize::OutputArchive& archive) {
  std::ostringstream os(std::ios::binary);
  archive.save_to(os);
  return os.str();
}

void bytes_to_archive(const std::string& bytes, torch::serialize::InputArchive& archive) {
  std::istringstream is(bytes, std::ios::binary);
  archive.load_from(is);
}

std::string checkpoint_name(int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "ckpt-%08lld.gsdiff", static_cast<long long>(step));
  return buf;
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    auto n = e.path().filename().string();
    if (e.is_regular_file() && n.rfind("ckpt-", 0) == 0 && n.size() > 12 && n.substr(n.size() - 7) == ".gsdiff")
      out.push_back(e.path().string());
  }
  std::sort(out.rbegin(), out.rend());  // zero-padded step: lexicographic = numeric
  return out;
}

std::vector<std::string> prune_checkpoints(const std::string& dir, int64_t keep, const std::string& written) {
  // Newest first by step; a file counts toward `keep` only once its envelope verifies (or it is the file
  // just written), so a corrupt high-numbered file never displaces a valid one: it is removed.
  std::vector<std::string> removed;
  int64_t kept = 0;
  if (!written.empty()) ++kept;
  for (const auto& p : list_checkpoints(dir)) {
    if (!written.empty() && fs::equivalent(p, written)) continue;
    bool valid = true;
    if (kept < keep) {
      try {
        read_checkpoint_file(p);
      } catch (const CheckpointError& e) {
        std::cerr << "warning: removing " << e.what() << "\n";
        valid = false;
      }
    }
    if (valid && kept < keep) {
      ++kept;
      continue;
    }
    std::error_code ec;
    fs::remove(p, ec);
    if (!ec) removed.push_back(p);
  }
  return removed;
}

int64_t checkpoint_step(const std::string& path) {
  const auto n = fs::path(path).filename().string();  // ckpt-<digits>.gsdiff
  if (n.rfind("ckpt-", 0) != 0 || n.size() <= 12) return -1;
  const auto digits = n.substr(5, n.size() - 12);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return removed;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto n = e.path().filename().string();
    if (n.rfind(".ckpt-", 0) == 0 && n.size() > 11 && n.compare(n.size() - 11, 11, ".gsdiff.tmp") == 0 &&
        fs::remove(e.path(), ec))
      removed.push_back(e.path().string());
  }
  return removed;
}

std::string newest_valid_checkpoint(const std::string& dir) {
  for (const auto& p : list_checkpoints(dir)) {
    try {
      read_checkpoint_file(p);
      return p;
    } catch (const CheckpointError& e) {
      std::cerr << "warning: skipping " << e.what() << "\n";
    }
  }
  return {};
}

}  // namespace gsdiff
