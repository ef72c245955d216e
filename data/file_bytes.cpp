// Whole-file reads with transparent gzip (zlib gzread), errors that name the file.
#include "data/file_bytes.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace gsdiff::data {

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st))
    throw std::runtime_error(path + ": file not found");
  if (std::filesystem::is_directory(st))
    throw std::runtime_error(path + ": is a directory, expected a file");
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> out;
  const unsigned chunk = 1u << 20;
  for (;;) {
    size_t old = out.size();
    out.resize(old + chunk);
    int n = gzread(f, out.data() + old, chunk);
    if (n < 0) {
      int code = 0;
      std::string msg = gzerror(f, &code);
      gzclose(f);
      throw std::runtime_error(path + ": read error (corrupt gzip?): " + msg);
    }
    out.resize(old + static_cast<size_t>(n));
    if (n == 0) break;
  }
  int code = 0;
  const char* msg = gzerror(f, &code);
  std::string m = msg ? msg : "";
  gzclose(f);
  // A truncated gzip stream ends with Z_BUF_ERROR ("unexpected end of file").
  if (code != Z_OK && code != Z_STREAM_END)
    throw std::runtime_error(path + ": read error (truncated or corrupt gzip): " + m);
  return out;
}

}  // namespace gsdiff::data
