// A full disk (tmpfs of a few pages, made and removed by the test in a private mount namespace) or a read-only or
// unwritable output directory during a checkpoint, a metrics line, a TensorBoard record or a sample file: the run
// stops with an error naming the file and the system error, and the previous checkpoint stays valid.
#include <gtest/gtest.h>

#include "faults/faults_util.h"
#include "train/checkpoint.h"

namespace {

using namespace gsdiff::faults;

constexpr int64_t kPage = 4096;

int64_t pages(int64_t bytes) { return (bytes + kPage - 1) / kPage; }

#define REQUIRE_MOUNTS()                                                                                   \
  if (!private_mounts())                                                                                   \
  GTEST_SKIP() << "SKIPPED: mounting a tmpfs is not permitted here (needs root / CAP_SYS_ADMIN): "          \
                  "the full-disk and read-only cases did not run"

// Fills the filesystem of `dir` (a fresh tmpfs) with a file, then frees `free_pages` of it again.
void fill(const std::string& dir, int64_t free_pages) {
  const std::string path = dir + "/filler";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const std::string block(kPage, 'f');
  int64_t n = 0;
  while (::write(fd, block.data(), block.size()) == ssize_t(block.size())) ++n;
  ASSERT_EQ(errno, ENOSPC);
  ASSERT_EQ(::ftruncate(fd, std::max<int64_t>(0, n - free_pages) * kPage), 0);
  ::close(fd);
}

// A bind mount of `src` (a file) over `dst` (created empty): writes to dst land on src's filesystem.
bool bind_file(const std::string& src, const std::string& dst) {
  std::ofstream(src, std::ios::app).close();
  std::ofstream(dst, std::ios::app).close();
  return ::mount(src.c_str(), dst.c_str(), nullptr, MS_BIND, nullptr) == 0;
}

// A finished 2-step run (ckpt-00000002.gsdiff) in `dir`, the state each case starts from.
void two_steps(const std::string& dir, const std::string& extra = "") {
  auto r = run_shell(tiny_train(dir, 2, "--quiet " + extra));
  ASSERT_EQ(r.rc, 0) << r.out;
  ASSERT_TRUE(fs::exists(dir + "/ckpt-00000002.gsdiff"));
}

void expect_named_error(const gsdiff::testing::Run& r, const std::string& file, const std::string& err) {
  EXPECT_EQ(r.rc, 1) << r.out;
  const auto at = r.out.find("error:");
  if (at != std::string::npos) std::cout << r.out.substr(at, r.out.find('\n', at) - at) << "\n";
  EXPECT_NE(r.out.find("'" + file + "'"), std::string::npos) << "the error must name " << file << ":\n" << r.out;
  EXPECT_NE(r.out.find("(" + err + ")"), std::string::npos) << "the error must name " << err << ":\n" << r.out;
  EXPECT_FALSE(has_backtrace(r.out)) << r.out;
}

void expect_valid(const std::string& ckpt) { EXPECT_NO_THROW(gsdiff::read_checkpoint_file(ckpt)) << ckpt; }

// The out dir on a tmpfs that holds one checkpoint and a half: the second periodic checkpoint (ckpt-4, written
// beside ckpt-2 before the prune) runs out of space. ckpt-2 stays valid and alone (no temporary file left);
// after the disk grows, --resume auto continues and trains the same losses as an uninterrupted run.
TEST(FullDisk, CheckpointWriteKeepsThePreviousCheckpoint) {
  REQUIRE_MOUNTS();
  const auto probe = fresh_dir("disk_probe");
  two_steps(probe);
  const int64_t ckpt = int64_t(fs::file_size(probe + "/ckpt-00000002.gsdiff"));
  const auto ref = train_lines(probe + "/metrics.jsonl");
  const auto dir = fresh_dir("disk_ckpt") + "/mnt";
  ASSERT_TRUE(mount_tmpfs(dir, (pages(ckpt) * 3 / 2 + 8) * kPage));
  const std::string every = "--set train.checkpoint_every=2 --set train.keep_checkpoints=1";
  auto r = run_shell(tiny_train(dir, 6, every));
  expect_named_error(r, dir + "/ckpt-00000004.gsdiff", "ENOSPC");
  EXPECT_NE(r.out.find("No space left on device"), std::string::npos) << r.out;
  const auto left = gsdiff::list_checkpoints(dir);
  ASSERT_EQ(left.size(), 1u) << r.out;
  EXPECT_EQ(left[0], dir + "/ckpt-00000002.gsdiff");
  expect_valid(left[0]);
  EXPECT_TRUE(gsdiff::remove_stale_temporaries(dir).empty()) << "a temporary file was left behind";

  ASSERT_EQ(::mount("tmpfs", dir.c_str(), "tmpfs", MS_REMOUNT, "size=64m"), 0);
  auto re = run_shell(tiny_train(dir, 6, every + " --resume auto --quiet"));
  ASSERT_EQ(re.rc, 0) << re.out;
  const auto got = train_lines(dir + "/metrics.jsonl");
  for (int64_t s : {1, 2}) EXPECT_EQ(got.at(s)["loss"], ref.at(s)["loss"]) << "step " << s;
  EXPECT_EQ(got.size(), 6u);
  ::umount(dir.c_str());
}

// metrics.jsonl on a filesystem with one free page: the lines of the resumed run fill it and the next one fails.
TEST(FullDisk, MetricsLineNamesTheFile) {
  REQUIRE_MOUNTS();
  const auto dir = fresh_dir("disk_metrics");
  two_steps(dir);
  const auto full = dir + "_full";
  ASSERT_TRUE(mount_tmpfs(full, 16 * kPage));
  std::ofstream(full + "/metrics.jsonl").close();
  fill(full, 1);
  ASSERT_TRUE(bind_file(full + "/metrics.jsonl", dir + "/metrics.jsonl"));
  auto r = run_shell(tiny_train(dir, 400, "--resume auto --quiet"));
  expect_named_error(r, dir + "/metrics.jsonl", "ENOSPC");
  EXPECT_NE(r.out.find("metrics '" + dir + "/metrics.jsonl': write failed: No space left on device"), std::string::npos) << r.out;
  EXPECT_GT(fs::file_size(dir + "/metrics.jsonl"), 2000u) << "the page should have held some lines first";
  expect_valid(dir + "/ckpt-00000002.gsdiff");
  ::umount((dir + "/metrics.jsonl").c_str());
  ::umount(full.c_str());
}

// <out>/tb on a filesystem with one free page: TensorBoard records fill it mid-run.
TEST(FullDisk, TensorBoardRecordNamesTheFile) {
  REQUIRE_MOUNTS();
  const auto dir = fresh_dir("disk_tb");
  two_steps(dir);
  ASSERT_TRUE(mount_tmpfs(dir + "/tb", 16 * kPage));
  fill(dir + "/tb", 1);
  auto r = run_shell(tiny_train(dir, 400, "--set train.tensorboard=true --resume auto --quiet"));
  EXPECT_EQ(r.rc, 1) << r.out;
  std::cout << r.out.substr(r.out.find("error:"), r.out.find('\n', r.out.find("error:")) - r.out.find("error:")) << "\n";
  EXPECT_NE(r.out.find("tensorboard events '" + dir + "/tb/events.out.tfevents."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("write failed: No space left on device (ENOSPC)"), std::string::npos) << r.out;
  EXPECT_FALSE(has_backtrace(r.out));
  EXPECT_GE(count_train_lines(dir + "/metrics.jsonl"), 4) << "records should have fitted for a few steps first";
  expect_valid(dir + "/ckpt-00000002.gsdiff");
  ::umount((dir + "/tb").c_str());
}

// The out dir sized for the final checkpoint and half the sample grid written after it.
TEST(FullDisk, SampleFileNamesTheFile) {
  REQUIRE_MOUNTS();
  const std::string grid = "--set sample.num=64 --set sample.steps=2";
  const auto probe = fresh_dir("disk_sample_probe");
  two_steps(probe, grid);
  const int64_t ckpt = int64_t(fs::file_size(probe + "/ckpt-00000002.gsdiff"));
  const int64_t png = int64_t(fs::file_size(probe + "/samples-2.png"));
  ASSERT_GE(pages(png), 2) << "the grid must span pages for a half-size disk";
  const auto dir = fresh_dir("disk_sample") + "/mnt";
  // checkpoint + config.json + metrics.jsonl + half the grid
  ASSERT_TRUE(mount_tmpfs(dir, (pages(ckpt) + 2 + pages(png) / 2) * kPage));
  auto r = run_shell(tiny_train(dir, 2, grid + " --quiet"));
  expect_named_error(r, dir + "/samples-2.png", "ENOSPC");
  expect_valid(dir + "/ckpt-00000002.gsdiff");
  EXPECT_FALSE(fs::exists(dir + "/samples-2.png")) << "a partial sample file was left";
  ::umount(dir.c_str());
}

// A read-only output directory (remounted read-only after a first run): the resume's first write fails with
// EROFS, naming the file; the checkpoint is untouched.
TEST(UnwritableDir, ReadOnlyMountNamesEROFS) {
  REQUIRE_MOUNTS();
  const auto dir = fresh_dir("disk_ro") + "/mnt";
  ASSERT_TRUE(mount_tmpfs(dir, 64 << 20));
  two_steps(dir);
  const auto before = bytes_of(dir + "/ckpt-00000002.gsdiff");
  ASSERT_EQ(::mount("tmpfs", dir.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, nullptr), 0);
  auto r = run_shell(tiny_train(dir, 4, "--resume auto --quiet"));
  expect_named_error(r, dir + "/metrics.jsonl", "EROFS");
  EXPECT_TRUE(bytes_of(dir + "/ckpt-00000002.gsdiff") == before);
  ::umount(dir.c_str());
}

// An output directory the user may not write (root ignores permission bits, so the run drops to uid 65534 with
// setpriv): EACCES, naming the file.
TEST(UnwritableDir, NoWritePermissionNamesEACCES) {
  if (::geteuid() != 0 || run_shell("command -v setpriv").rc != 0)
    GTEST_SKIP() << "SKIPPED: needs root and setpriv to run gsdiff as another user";
  const auto dir = fresh_dir("disk_eacces");
  two_steps(dir);
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                           fs::perms::others_exec);
  const auto before = bytes_of(dir + "/ckpt-00000002.gsdiff");
  auto r = run_shell("setpriv --reuid=65534 --regid=65534 --clear-groups " + tiny_train(dir, 4, "--resume auto --quiet"));
  if (r.out.find("error while loading shared libraries") != std::string::npos)
    GTEST_SKIP() << "SKIPPED: uid 65534 cannot read the gsdiff build: " << r.out;
  expect_named_error(r, dir + "/metrics.jsonl", "EACCES");
  EXPECT_TRUE(bytes_of(dir + "/ckpt-00000002.gsdiff") == before);
}

}  // namespace
