// gsdiff train data parallel through tools/launch.sh (2 Gloo ranks on loopback), resume with the same or
// another world size, the two-machine launch (two launch.sh --nnodes 2 on one host) equal to one process, and gsdiff bench's JSON.
#include <gtest/gtest.h>

#include "tools/cli_test_util.h"
#include <nlohmann/json.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using gsdiff::testing::bytes_of;
using gsdiff::testing::fresh_out_dir;
using gsdiff::testing::kQuickstartConfig;

using gsdiff::testing::Run;
Run run_sh(const std::string& cmd_line) { return gsdiff::testing::run_shell(cmd_line); }

const std::string kLaunch2 = std::string(GSDIFF_SOURCE_DIR) + "/tools/launch.sh -n 2 -- " + GSDIFF_CLI;
const std::string kTinyDist = " --set data.batch_size=4 --set sample.num=4 --set sample.steps=2 --set train.log_every=1"
                          " --set train.eval_every=0 --threads 1 --dist-timeout 60";

int loopback_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int port = -1;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}


int count_lines(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  int n = 0;
  while (std::getline(f, line)) ++n;
  return n;
}

}  // namespace

TEST(CliDistributed, TwoRanksTrainRankZeroWritesResumeAnyDividingWorld) {
  auto out = fresh_out_dir("dist_train");
  auto tr = run_sh(kLaunch2 + " train --config " + kQuickstartConfig + kTinyDist + " --set train.steps=3 --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  EXPECT_NE(tr.out.find("data parallel: 2 ranks (gloo)"), std::string::npos) << tr.out;
  EXPECT_TRUE(std::filesystem::exists(out + "/ckpt-00000003.gsdiff")) << tr.out;
  EXPECT_TRUE(std::filesystem::exists(out + "/samples-3.png"));
  EXPECT_EQ(count_lines(out + "/metrics.jsonl"), 3);  // one writer: rank 0

  auto re = run_sh(kLaunch2 + " train --config " + kQuickstartConfig + kTinyDist + " --set train.steps=5 --resume auto --out " + out);
  ASSERT_EQ(re.rc, 0) << re.out;
  EXPECT_TRUE(std::filesystem::exists(out + "/ckpt-00000005.gsdiff")) << re.out;
  EXPECT_EQ(count_lines(out + "/metrics.jsonl"), 5);

  // 3 ranks cannot continue 10 batches into the one-process order exactly: refused, naming the checkpoint.
  auto three = run_sh(std::string(GSDIFF_SOURCE_DIR) + "/tools/launch.sh -n 3 -- " + GSDIFF_CLI + " train --config " +
                      kQuickstartConfig + kTinyDist + " --set train.steps=6 --resume auto --out " + out);
  EXPECT_NE(three.rc, 0) << three.out;
  EXPECT_NE(three.out.find("ckpt-00000005.gsdiff"), std::string::npos) << three.out;
  EXPECT_NE(three.out.find("3 ranks cannot continue exactly"), std::string::npos) << three.out;

  // One process with accumulate 2 continues the same run: its step-6 sample grid is byte-identical to that of
  // one process trained with accumulate 2 from the start.
  auto one = run_sh(std::string(GSDIFF_CLI) + " train --config " + kQuickstartConfig + kTinyDist +
                    " --set train.steps=6 --set train.accumulate=2 --resume auto --out " + out);
  ASSERT_EQ(one.rc, 0) << one.out;
  EXPECT_NE(one.out.find("saved by 2 rank(s) x accumulate 1 and goes on as 1 x 2: the same global batch"),
            std::string::npos) << one.out;
  auto ref = run_sh(std::string(GSDIFF_CLI) + " train --config " + kQuickstartConfig + kTinyDist +
                    " --set train.steps=6 --set train.accumulate=2 --quiet --out " + out + "/ref");
  ASSERT_EQ(ref.rc, 0) << ref.out;
  const auto grid = bytes_of(out + "/samples-6.png");
  ASSERT_FALSE(grid.empty());
  EXPECT_TRUE(grid == bytes_of(out + "/ref/samples-6.png")) << "the resumed run differs from the uninterrupted one";
  std::filesystem::remove_all(out);
}

// The README's two-machine command, both "machines" on this host: node 0 and node 1 each run
// `launch.sh -n 1 --nnodes 2 --node-rank K --master-addr 127.0.0.1 --master-port P`. Ranks interleave whole
// batches and draw their noise from the batch's place in the one-process order (train/trainer.cpp), so the
// run equals one process with train.accumulate=2: the final sample grids (EMA weights, fixed sampling seed)
// are byte-identical, while one process on a single rank's batches alone gives a different grid.
TEST(CliDistributed, TwoNodeLaunchEqualsOneProcessWithAccumulation) {
  auto out = fresh_out_dir("dist_two_node");
  std::filesystem::create_directories(out);
  const int port = loopback_free_port();
  ASSERT_GT(port, 0);
  const std::string train = std::string(" -- ") + GSDIFF_CLI + " train --config " + kQuickstartConfig + kTinyDist +
                            " --set train.steps=3";
  auto node = [&](int k) {
    return std::string(GSDIFF_SOURCE_DIR) + "/tools/launch.sh -n 1 --nnodes 2 --node-rank " + std::to_string(k) +
           " --master-addr 127.0.0.1 --master-port " + std::to_string(port) + train + " --out " + out + "/two";
  };
  auto two = run_sh("{ ( " + node(1) + " > " + out + "/node1.log 2>&1 ) & " + node(0) + "; s0=$?; wait $!; s1=$?; " +
                    "cat " + out + "/node1.log; exit $((s0 | s1)); }");
  ASSERT_EQ(two.rc, 0) << two.out;
  EXPECT_NE(two.out.find("data parallel: 2 ranks (gloo)"), std::string::npos) << two.out;
  auto one = run_sh(std::string(GSDIFF_CLI) + " train --config " + kQuickstartConfig + kTinyDist +
                    " --set train.steps=3 --quiet --set train.accumulate=2 --out " + out + "/one");
  ASSERT_EQ(one.rc, 0) << one.out;
  auto half = run_sh(std::string(GSDIFF_CLI) + " train --config " + kQuickstartConfig + kTinyDist +
                     " --set train.steps=3 --quiet --out " + out + "/half");
  ASSERT_EQ(half.rc, 0) << half.out;
  const auto grid_two = bytes_of(out + "/two/samples-3.png"), grid_one = bytes_of(out + "/one/samples-3.png");
  ASSERT_FALSE(grid_one.empty());
  EXPECT_TRUE(grid_two == grid_one) << "2 nodes and 1 process with accumulate 2 wrote different sample grids";
  EXPECT_FALSE(bytes_of(out + "/half/samples-3.png") == grid_one);
  std::filesystem::remove_all(out);
}

// The FLOP count reads ATen's ops, so it must not depend on which path runs the convolutions: cached oneDNN,
// ATen's, or Winograd (the count is of the convolution, 2 x MACs, not of the algorithm's multiplications).
TEST(CliBench, FlopCountIsTheSameOnEveryConvolutionPath) {
  std::vector<double> flops;
  for (std::string flags : {"--conv aten", "--conv cached", "--conv cached --conv-algorithm winograd"}) {
    auto r = run_sh(std::string(GSDIFF_CLI) + " bench --config " + GSDIFF_SOURCE_DIR +
                    "/bench/configs/unet-micro.json --batch 2 --steps 1 --warmup 0 --sample-calls 1 --threads 1 " +
                    flags + " 2>/dev/null");
    ASSERT_EQ(r.rc, 0) << flags << ": " << r.out;
    flops.push_back(nlohmann::json::parse(r.out)["flops"]["forward"].get<double>());
  }
  EXPECT_GT(flops[0], 0.0);
  EXPECT_EQ(flops[1], flops[0]) << "cached convolutions";
  EXPECT_EQ(flops[2], flops[0]) << "winograd";
}

TEST(CliBench, PrintsOneJsonObject) {
  auto r = run_sh(std::string(GSDIFF_CLI) + " bench --config " + GSDIFF_SOURCE_DIR +
               "/bench/configs/unet-micro.json --batch 2 --steps 2 --warmup 1 --sample-calls 1 --threads 1 2>/dev/null");
  ASSERT_EQ(r.rc, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parameters"], 176849);
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["threads"], 1);
  for (const char* k : {"step_ms_median", "forward_ms_median", "backward_ms_median", "optimizer_ms_median",
                        "examples_per_s", "steps_per_s"})
    EXPECT_GT(j["train"][k].get<double>(), 0.0) << k;
  EXPECT_GT(j["sample"]["calls_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["flops"]["forward"].get<double>(), 0.0);
  EXPECT_GT(j["peak_memory_bytes"].get<int64_t>(), 0);
  EXPECT_TRUE(j.contains("libtorch") && j.contains("commit"));
  EXPECT_EQ(j["precision"], "fp32");
  EXPECT_EQ(j["output_dtype"], "Float");
  EXPECT_EQ(j["block_autograd"], "on");
  auto bad_blocks = run_sh(std::string(GSDIFF_CLI) + " bench --config " + GSDIFF_SOURCE_DIR +
                           "/bench/configs/unet-micro.json --block-autograd maybe");
  EXPECT_NE(bad_blocks.rc, 0);
  EXPECT_NE(bad_blocks.out.find("--block-autograd: on or off, got 'maybe'"), std::string::npos) << bad_blocks.out;

  // --precision bf16: the step's forward runs under bf16 autocast (its output comes out in bf16).
  auto b = run_sh(std::string(GSDIFF_CLI) + " bench --config " + GSDIFF_SOURCE_DIR +
                  "/bench/configs/unet-micro.json --batch 2 --steps 1 --warmup 1 --sample-calls 1 --threads 1"
                  " --precision bf16 2>/dev/null");
  ASSERT_EQ(b.rc, 0) << b.out;
  auto jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(jb["precision"], "bf16");
  EXPECT_EQ(jb["output_dtype"], "BFloat16");
  auto bad = run_sh(std::string(GSDIFF_CLI) + " bench --config " + GSDIFF_SOURCE_DIR +
                    "/bench/configs/unet-micro.json --precision fp16");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--precision: fp32 or bf16, got 'fp16'"), std::string::npos) << bad.out;
}
