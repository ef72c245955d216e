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

}  // namespace gsdiff::testing
