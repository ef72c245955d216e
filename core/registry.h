// The process registry: forward processes by name, built from typed JSON options; plugins add more.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/process.h"

namespace gsdiff {

using ProcessFactory = std::function<std::unique_ptr<Process>(const nlohmann::json& options)>;

struct ProcessEntry {
  std::string name;
  std::string description;   // one line, with the paper it follows
  nlohmann::json defaults;   // the resolved default options (what `gsdiff info` prints)
  ProcessFactory factory;
};

class ProcessRegistry {
 public:
  static ProcessRegistry& global();

  void add(ProcessEntry entry);  // a second entry under one name is an error
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  const ProcessEntry& entry(const std::string& name) const;
  std::vector<std::string> names() const;
  // cfg = {"name": "...", ...options}; an unknown name is an error listing the known ones.
  std::unique_ptr<Process> make(const nlohmann::json& cfg) const;

 private:
  std::map<std::string, ProcessEntry> entries_;
};

// Registers the built-in processes once (explicit, so that no linker drops static initialisers).
void register_builtins();

// register_builtins() then ProcessRegistry::global().make(cfg).
std::unique_ptr<Process> make_process(const nlohmann::json& cfg);

// Loads a shared library and calls its `extern "C" void gsdiff_plugin_register()`, which registers
// the library's processes (and models) in the running program's registries.
void load_plugin(const std::string& path);

}  // namespace gsdiff
