// Registration of the built-in discrete processes (filled in with the categorical kernels).
#include "core/registry.h"

namespace gsdiff {

void register_discrete_builtins(ProcessRegistry& reg) {}

}  // namespace gsdiff
