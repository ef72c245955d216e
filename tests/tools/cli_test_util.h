// Shared by the CLI tests: run a shell command line, capture stdout + stderr and the exit code.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>

namespace gsdiff::testing {

struct Run {
  int rc;
  std::string out;
};

// Runs `cmd_line` through the shell with stderr folded into stdout.
inline Run run_shell(const std::string& cmd_line) {
  std::string cmd = cmd_line + " 2>&1";
  Run r{-1, ""};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// Runs the gsdiff binary under test with `args`.
// GSDIFF_THREADS=1: ctest -j2 runs two commands at once; commands without --threads take one core each.
inline Run run_gsdiff(const std::string& args) { return run_shell("GSDIFF_THREADS=1 " + std::string(GSDIFF_CLI) + " " + args); }
inline Run run_cli(const std::string& args) { return run_gsdiff(args); }

// A fresh (removed) path under the temp dir for one test's output.
inline std::string fresh_out_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("gsdiff_cli_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  return d.string();
}

// A file's bytes ("" when it cannot be read).
inline std::string bytes_of(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline const std::string kQuickstartConfig = std::string(GSDIFF_SOURCE_DIR) + "/configs/quickstart.json";

inline const std::string kGcide = "/usr/share/dictd/gcide.dict.dz";  // Debian dict-gcide

// GCIDE's dictionary text (tags dropped, first 4 MB) in text8 form, made once per test binary; "" when unavailable.
// Made under this process's names and renamed into place: ctest -j runs test processes side by side.
inline const std::string& gcide_text8() {
  static const std::string path = [] {
    namespace fs = std::filesystem;
    if (!fs::exists(kGcide)) return std::string();
    auto dir = fs::temp_directory_path() / "gsdiff_cli_gcide";
    fs::create_directories(dir);
    auto raw = (dir / "gcide.txt").string(), out = (dir / "gcide.text8").string();
    if (fs::exists(out) && fs::file_size(out) > 1000000) return out;
    const std::string pid = std::to_string(::getpid());
    auto r = run_shell("zcat " + kGcide + " | head -c 4000000 | sed -e 's/<[^>]*>/ /g' > " + raw + "." + pid);
    if (r.rc != 0) return std::string();
    auto t = run_cli("data text8ify " + raw + "." + pid + " " + out + "." + pid);
    fs::remove(raw + "." + pid);
    if (t.rc != 0) return std::string();
    fs::rename(out + "." + pid, out);
    return out;
  }();
  return path;
}

}  // namespace gsdiff::testing
