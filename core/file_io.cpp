// Checked output files: atomic whole-file writes and append-only files, errors naming the file and errno.
#include "core/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

namespace gsdiff {

namespace {

const char* errno_name(int err) {
  switch (err) {
    case ENOSPC: return "ENOSPC";
    case EDQUOT: return "EDQUOT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EROFS: return "EROFS";
    case EIO: return "EIO";
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EFBIG: return "EFBIG";
    case EEXIST: return "EEXIST";
    case EMFILE: return "EMFILE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EXDEV: return "EXDEV";
    default: return nullptr;
  }
}

// Writes all of [p, p + n) to fd; false (errno set) on an error other than EINTR.
bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (w == 0) {  // no progress and no error: treat as a full device
      errno = ENOSPC;
      return false;
    }
    p += w;
    n -= size_t(w);
  }
  return true;
}

}  // namespace

std::string errno_text(int err) {
  const char* name = errno_name(err);
  return std::string(std::strerror(err)) + " (" + (name ? name : "errno " + std::to_string(err)) + ")";
}

void throw_file_error(const std::string& what, const std::string& path, const std::string& op, int err) {
  throw FileError(what + " '" + path + "': " + op + " failed: " + errno_text(err));
}

void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts, const std::string& what) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string tmp = (dir / ("." + p.filename().string() + ".tmp")).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_file_error(what, path, "creating its temporary file", errno);
  const char* op = "write";
  bool ok = true;
  for (const auto& part : parts)
    if (ok) ok = write_all(fd, part.data(), part.size());
  if (ok && ::fsync(fd) != 0) ok = false, op = "fsync";
  int err = errno;
  if (::close(fd) != 0 && ok) ok = false, op = "close", err = errno;  // NFS reports write errors at close
  if (!ok) {
    ::unlink(tmp.c_str());
    throw_file_error(what, path, op, err);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    throw_file_error(what, path, "rename", err);
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

AppendFile::AppendFile(const std::string& path, const std::string& what, bool truncate) : path_(path), what_(what) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND), 0644);
  if (fd_ < 0) throw_file_error(what, path, "open for writing", errno);
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

AppendFile::AppendFile(AppendFile&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)), what_(std::move(o.what_)) {}

AppendFile& AppendFile::operator=(AppendFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    path_ = std::move(o.path_);
    what_ = std::move(o.what_);
  }
  return *this;
}

void AppendFile::append(const std::string& bytes) {
  if (fd_ < 0) throw FileError(what_ + " '" + path_ + "': not open");
  if (!write_all(fd_, bytes.data(), bytes.size())) throw_file_error(what_, path_, "write", errno);
}

}  // namespace gsdiff
