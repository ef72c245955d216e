// Shared by the fault-injection tests: the gsdiff CLI as a child process (its pid, signals, deadlines), tiny
// quickstart runs, metrics.jsonl, private mounts.
#pragma once
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/cli_test_util.h"

namespace gsdiff::faults {

namespace fs = std::filesystem;
using testing::bytes_of;
using testing::run_shell;

// A quickstart run small enough for many trials: batch 4, one thread, a metrics line per step, no TensorBoard,
// no periodic checkpoints or samples (each test adds what it needs).
inline std::string tiny_train(const std::string& out, int64_t steps, const std::string& extra = "") {
  return std::string(GSDIFF_CLI) + " train --config " + testing::kQuickstartConfig +
         " --set data.batch_size=4 --set sample.num=0 --set train.log_every=1 --set train.eval_every=0"
         " --set train.tensorboard=false --set train.checkpoint_every=0 --set train.steps=" + std::to_string(steps) +
         " --threads 1 --out " + out + " " + extra;
}

// A fresh (removed and re-created) directory for one test.
inline std::string fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("gsdiff_faults_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// A child running `cmd_line` through /bin/sh with `exec`, so that pid is the command's own.
struct Child {
  pid_t pid = -1;
  std::string log;  // its stdout + stderr
  int status = -1;  // the raw wait status once reaped
};

inline Child spawn(const std::string& cmd_line, const std::string& log, const std::map<std::string, std::string>& env = {}) {
  Child c;
  c.log = log;
  c.pid = ::fork();
  if (c.pid == 0) {
    ::setpgid(0, 0);  // its own group: a test's kill never reaches the test binary
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl("/bin/sh", "sh", "-c", ("exec " + cmd_line).c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  return c;
}

// Waits up to `timeout_s` for the child; false (child still running) on timeout.
inline bool wait_for_exit(Child& c, double timeout_s) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    if (::waitpid(c.pid, &c.status, WNOHANG) == c.pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

inline void kill_and_reap(Child& c) {
  ::kill(c.pid, SIGKILL);
  ::kill(c.pid, SIGCONT);
  ::waitpid(c.pid, &c.status, 0);
}

inline int exit_code(const Child& c) { return WIFEXITED(c.status) ? WEXITSTATUS(c.status) : 128 + WTERMSIG(c.status); }

// Polls `pred` every 2 ms for up to `timeout_s`.
inline bool wait_until(const std::function<bool()>& pred, double timeout_s) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

// metrics.jsonl's training lines, the last one per step (a resumed run rewrites the steps after its checkpoint).
inline std::map<int64_t, nlohmann::json> train_lines(const std::string& path) {
  std::map<int64_t, nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("loss")) out[j["step"].get<int64_t>()] = j;
  }
  return out;
}

inline int64_t count_train_lines(const std::string& path) { return int64_t(train_lines(path).size()); }

// The loss of every step of `a` equals that of `b` exactly (JSON keeps doubles bit for bit); returns mismatches.
inline std::string compare_losses(const std::map<int64_t, nlohmann::json>& a, const std::map<int64_t, nlohmann::json>& b) {
  std::string diff;
  if (a.size() != b.size()) diff += "steps " + std::to_string(a.size()) + " vs " + std::to_string(b.size()) + "; ";
  for (const auto& [step, j] : b) {
    auto it = a.find(step);
    if (it == a.end()) diff += "step " + std::to_string(step) + " missing; ";
    else if (it->second["loss"].get<double>() != j["loss"].get<double>())
      diff += "step " + std::to_string(step) + ": " + it->second["loss"].dump() + " vs " + j["loss"].dump() + "; ";
  }
  return diff;
}

inline const char* strsignal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : sig == SIGUSR1 ? "SIGUSR1" : "SIG?";
}

// Output a user sees that holds a C++ backtrace (what a user error must never print).
inline bool has_backtrace(const std::string& out) {
  return out.find("Exception raised from") != std::string::npos || out.find("frame #") != std::string::npos;
}

// A TCP port on 127.0.0.1 that was free a moment ago (the rendezvous of a data-parallel run).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// Rank r of a `world`-rank run of `cmd_line` on loopback (the torchrun variables), output to `log`.
inline Child spawn_rank(const std::string& cmd_line, const std::string& log, int rank, int world, int port) {
  return spawn(cmd_line, log, {{"RANK", std::to_string(rank)}, {"LOCAL_RANK", std::to_string(rank)},
                               {"WORLD_SIZE", std::to_string(world)}, {"MASTER_ADDR", "127.0.0.1"},
                               {"MASTER_PORT", std::to_string(port)}});
}

inline const std::string kLaunch2 = std::string(GSDIFF_SOURCE_DIR) + "/tools/launch.sh -n 2 -- ";

// This test process (and its children) in a private mount namespace: its mounts vanish with it. False when
// not permitted (not root, no CAP_SYS_ADMIN, a restricted container).
inline bool private_mounts() {
  static const bool ok = [] {
    if (::unshare(CLONE_NEWNS) != 0) return false;
    return ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
  }();
  return ok;
}

inline bool mount_tmpfs(const std::string& dir, int64_t bytes, bool read_only = false) {
  fs::create_directories(dir);
  const std::string opts = "size=" + std::to_string(bytes);
  return ::mount("tmpfs", dir.c_str(), "tmpfs", read_only ? MS_RDONLY : 0, opts.c_str()) == 0;
}

}  // namespace gsdiff::faults
