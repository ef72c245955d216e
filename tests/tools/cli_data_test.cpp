// The gsdiff data command end to end: text8ify on a file, check on a config, --help and errors.
#include <gtest/gtest.h>

#include "tools/cli_test_util.h"
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace {

using gsdiff::testing::Run;
Run run_data(const std::string& args) { return gsdiff::testing::run_gsdiff("data " + args); }

std::string tmp_dir() {
  auto d = std::filesystem::temp_directory_path() / ("gsdiff_cli_data_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST(CliData, Text8ifyConvertsAFile) {
  const std::string d = tmp_dir();
  {
    std::ofstream f(d + "/in.txt", std::ios::binary);
    f << "  Chapter 1.\nIt was the BEST of times, caf\xc3\xa9!\n";
  }
  auto r = run_data("text8ify " + d + "/in.txt " + d + "/out.txt");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("characters out"), std::string::npos) << r.out;
  EXPECT_EQ(slurp(d + "/out.txt"), "chapter it was the best of times caf");
  std::filesystem::remove_all(d);
}

TEST(CliData, CheckPrintsTheDataset) {
  auto r = run_data("check '{\"name\": \"toy-markov\", \"n\": 12, \"seq_len\": 5}'");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("\"size\": 12"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"kind\": \"tokens\""), std::string::npos) << r.out;
}

TEST(CliData, HelpAndErrors) {
  auto h = run_data("--help");
  EXPECT_EQ(h.rc, 0);
  EXPECT_NE(h.out.find("text8ify INPUT OUTPUT"), std::string::npos) << h.out;
  auto missing = run_data("text8ify /nonexistent/in.txt /tmp/x.txt");
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.out.find("/nonexistent/in.txt: file not found"), std::string::npos) << missing.out;
  auto unknown = run_data("shuffle");
  EXPECT_EQ(unknown.rc, 1);
  EXPECT_NE(unknown.out.find("unknown data action 'shuffle'"), std::string::npos) << unknown.out;
  auto bad = run_data("check '{\"name\": \"imagenet\"}'");
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.out.find("known datasets: fashion-mnist"), std::string::npos) << bad.out;
}
