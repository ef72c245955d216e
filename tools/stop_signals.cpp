// The stop-signal handlers of `gsdiff train`: flags only (async-signal-safe), restartable system calls.
#include "tools/stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

#include "train/trainer.h"

namespace gsdiff::cli {

namespace {

std::atomic<int> g_first{0}, g_later{0};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "the signal handler needs lock-free atomics");
constexpr int kSignals[] = {SIGTERM, SIGINT, SIGUSR1};

void on_stop_signal(int sig) {
  int none = 0;
  if (g_first.compare_exchange_strong(none, sig)) {
    Trainer::stop_requested().store(true);
    return;
  }
  if (g_later.fetch_add(1) == 0) {
    static const char note[] = "gsdiff train: already stopping: finishing the step and the checkpoint\n";
    ssize_t ignored = ::write(STDERR_FILENO, note, sizeof note - 1);
    (void)ignored;
  }
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : kSignals) sigaddset(&sa.sa_mask, s);  // one handler at a time
  sa.sa_flags = SA_RESTART;  // reads and writes in flight resume instead of failing with EINTR
  for (int s : kSignals) ::sigaction(s, &sa, nullptr);
}

int first_stop_signal() { return g_first.load(); }
int later_stop_signals() { return g_later.load(); }

const char* signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

}  // namespace gsdiff::cli
