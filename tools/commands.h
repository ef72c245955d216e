// The gsdiff subcommands: each is `int cmd_<name>(int argc, char** argv)` in tools/cmd_<name>.cpp.
#pragma once
#include <string>
#include <vector>

namespace gsdiff::cli {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);  // argv[0] is "gsdiff <name>"
};

// Every command the binary knows, in the order `gsdiff --help` lists them (tools/main.cpp).
const std::vector<Command>& commands();

// Sets LibTorch intra-op threads from --threads (0 = all cores); LibTorch here defaults to 1.
void set_threads(int requested);

int cmd_info(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_sample(int argc, char** argv);
int cmd_data(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_bench(int argc, char** argv);

// mallopt() against page-fault churn, called first in main (tools/cmd_bench.cpp); GSDIFF_MALLOC=default skips it.
const char* tune_allocator();

}  // namespace gsdiff::cli
