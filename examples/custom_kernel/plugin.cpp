// The ring-walk kernel as a run-time plugin: gsdiff calls gsdiff_plugin_register() after dlopen.
#include "ring_walk.h"

extern "C" void gsdiff_plugin_register() { register_ring_walk(); }
