// Any text -> text8 form (lower-case a-z, single spaces), streamed through a fixed buffer.
#include "data/text8ify.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

namespace gsdiff::data {

void Text8ifier::feed(const char* data, size_t n, std::string& out) {
  bytes_in_ += static_cast<int64_t>(n);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
    if (c >= 'a' && c <= 'z') {
      if (pending_space_) {
        out.push_back(' ');
        ++chars_out_;
        pending_space_ = false;
      }
      out.push_back(static_cast<char>(c));
      ++chars_out_;
      any_output_ = true;
    } else if (any_output_) {
      pending_space_ = true;  // emitted only if another letter follows: no trailing space
    }
  }
}

namespace {
struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;
}  // namespace

Text8ifyStats text8ify_file(const std::string& input, const std::string& output) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(input, ec)) throw std::runtime_error(input + ": file not found");
  if (fs::is_directory(input, ec)) throw std::runtime_error(input + ": is a directory, expected a text file");
  if (fs::exists(output, ec) && fs::equivalent(input, output, ec))
    throw std::runtime_error(output + ": output is the same file as the input " + input);
  FilePtr in(std::fopen(input.c_str(), "rb"));
  if (!in) throw std::runtime_error(input + ": cannot open: " + std::strerror(errno));
  const std::string tmp = output + ".tmp";
  FilePtr out(std::fopen(tmp.c_str(), "wb"));
  if (!out) throw std::runtime_error(output + ": cannot create " + tmp + ": " + std::strerror(errno));
  constexpr size_t kBuf = 1 << 20;
  std::vector<char> buf(kBuf);
  std::string converted;
  converted.reserve(kBuf + 1);
  Text8ifier conv;
  for (;;) {
    size_t n = std::fread(buf.data(), 1, kBuf, in.get());
    if (n == 0) {
      if (std::ferror(in.get())) {
        out.reset();
        fs::remove(tmp, ec);
        throw std::runtime_error(input + ": read error");
      }
      break;
    }
    converted.clear();
    conv.feed(buf.data(), n, converted);
    if (!converted.empty() && std::fwrite(converted.data(), 1, converted.size(), out.get()) != converted.size()) {
      out.reset();
      fs::remove(tmp, ec);
      throw std::runtime_error(output + ": write error: " + std::strerror(errno));
    }
  }
  in.reset();
  if (std::fflush(out.get()) != 0 || std::fclose(out.release()) != 0) {
    fs::remove(tmp, ec);
    throw std::runtime_error(output + ": write error: " + std::strerror(errno));
  }
  fs::rename(tmp, output, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw std::runtime_error(output + ": cannot rename " + tmp + " into place: " + ec.message());
  }
  return {conv.bytes_in(), conv.chars_out()};
}

}  // namespace gsdiff::data
