// SIGTERM, SIGINT and SIGUSR1 ask `gsdiff train` to stop after the current step, checkpoint, and exit resumable.
#pragma once

namespace gsdiff::cli {

// EX_TEMPFAIL (sysexits.h): stopped by a signal after a finished step, checkpoint written; `--resume auto` continues.
constexpr int kExitInterrupted = 75;

// sigaction(SA_RESTART) for SIGTERM, SIGINT and SIGUSR1. The handler is async-signal-safe: it stores to lock-free
// atomics (Trainer::stop_requested() and the first signal's number) and, from the second signal on, write(2)s one
// note; it never exits, so a second signal during the checkpoint write cannot cut it short.
void install_stop_handlers();
int first_stop_signal();   // 0 when none arrived
int later_stop_signals();  // how many arrived after the first
const char* signal_name(int sig);  // "SIGTERM", ...

}  // namespace gsdiff::cli
