// Output files written with every system error checked: errors name the file and errno (ENOSPC, EACCES, ...).
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace gsdiff {

// A file could not be written; what() reads "<what> '<path>': <op> failed: <strerror> (<ENAME>)".
struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "No space left on device (ENOSPC)": strerror with the errno's symbolic name.
std::string errno_text(int err);
[[noreturn]] void throw_file_error(const std::string& what, const std::string& path, const std::string& op, int err);

// Writes `bytes` to `path` atomically: a temporary file beside it, written, flushed and fsynced, then renamed
// over `path`. On any error the temporary is removed, `path` keeps its old content, and FileError is thrown
// naming `what` (e.g. "samples"), the path and the system error.
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts, const std::string& what);
inline void write_file_atomic(const std::string& path, const std::string& bytes, const std::string& what) {
  write_file_atomic(path, std::vector<std::string_view>{bytes}, what);
}

// An append-only file (metrics.jsonl, TensorBoard events): each append() writes all its bytes or throws
// FileError naming the file and the system error (short writes are retried; EINTR is retried).
class AppendFile {
 public:
  AppendFile() = default;
  AppendFile(const std::string& path, const std::string& what, bool truncate = false);
  ~AppendFile();
  AppendFile(AppendFile&& o) noexcept;
  AppendFile& operator=(AppendFile&& o) noexcept;
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  bool is_open() const { return fd_ >= 0; }
  void append(const std::string& bytes);
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_, what_;
};

}  // namespace gsdiff
