// Helpers for tests/data: temp directories, writing plain/gzip files, asserting error messages.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace gsdiff::testing {

// A fresh directory under the system temp dir, removed with everything in it at scope end.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("gsdiff_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}
inline void write_text(const std::string& path, const std::string& s) {
  write_bytes(path, std::vector<uint8_t>(s.begin(), s.end()));
}
inline void write_gzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  if (!bytes.empty()) {
    ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  }
  ASSERT_EQ(gzclose(f), Z_OK);
}
inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace gsdiff::testing

// Runs `stmt`, expects an exception of type `exc` whose what() contains every listed substring.
#define EXPECT_ERROR_WITH(stmt, exc, ...)                                                    \
  do {                                                                                       \
    try {                                                                                    \
      stmt;                                                                                  \
      ADD_FAILURE() << "expected " #exc " from: " #stmt;                                     \
    } catch (const exc& e_) {                                                                \
      for (const std::string& sub_ : std::vector<std::string>{__VA_ARGS__}) {                \
        EXPECT_NE(std::string(e_.what()).find(sub_), std::string::npos)                      \
            << "message '" << e_.what() << "' lacks '" << sub_ << "'";                       \
      }                                                                                      \
    }                                                                                        \
  } while (0)
