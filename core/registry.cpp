// Process registry, built-in registrations and run-time plugin loading (dlopen).
#include "core/registry.h"

#include <dlfcn.h>

#include <mutex>

#include "core/embedded_gaussian.h"
#include "core/gaussian.h"
#include "core/options.h"

namespace gsdiff {

void register_discrete_builtins(ProcessRegistry& reg);  // core/discrete_registry.cpp

ProcessRegistry& ProcessRegistry::global() {
  static ProcessRegistry reg;
  return reg;
}

void ProcessRegistry::add(ProcessEntry entry) {
  if (entries_.count(entry.name)) throw ConfigError("process '" + entry.name + "' is already registered");
  auto name = entry.name;
  entries_.emplace(name, std::move(entry));
}

std::vector<std::string> ProcessRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;
}

const ProcessEntry& ProcessRegistry::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    throw ConfigError("unknown process '" + name + "'; known processes: " + JsonReader::join(names()));
  return it->second;
}

std::unique_ptr<Process> ProcessRegistry::make(const nlohmann::json& cfg) const {
  if (!cfg.is_object() || !cfg.contains("name") || !cfg["name"].is_string())
    throw ConfigError("process: field 'name' is required (a string); known processes: " + JsonReader::join(names()));
  return entry(cfg["name"].get<std::string>()).factory(cfg);
}

void register_builtins() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto& reg = ProcessRegistry::global();
    struct G { const char* family; const char* desc; };
    for (G g : {G{"vp", "variance-preserving Gaussian (DDPM, iDDPM cosine, VDM linear log-SNR; schedule learned-logsnr: VDM's learned schedule)"},
                G{"ve", "variance-exploding Gaussian, geometric sigma (Song et al. 2021)"},
                G{"subvp", "sub-VP Gaussian, linear beta (Song et al. 2021)"},
                G{"flow", "flow matching / rectified flow: straight path, velocity prediction (Lipman et al. 2023; Liu et al. 2023)"}}) {
      std::string fam = g.family;
      reg.add({"gaussian-" + fam, g.desc, to_json(gaussian_options_from_json(nlohmann::json::object(), fam)),
               [fam](const nlohmann::json& j) -> std::unique_ptr<Process> {
                 return std::make_unique<GaussianProcess>(gaussian_options_from_json(j, fam));
               }});
    }
    reg.add({"gaussian-embed", "VP Gaussian on fixed token codes (Analog Bits, Chen et al. 2022; CDCD, Dieleman et al. 2022)",
             to_json(embedded_gaussian_options_from_json(nlohmann::json::object())),
             [](const nlohmann::json& j) -> std::unique_ptr<Process> {
               return std::make_unique<EmbeddedGaussianProcess>(embedded_gaussian_options_from_json(j));
             }});
    register_discrete_builtins(reg);
  });
}

std::unique_ptr<Process> make_process(const nlohmann::json& cfg) {
  register_builtins();
  return ProcessRegistry::global().make(cfg);
}

void load_plugin(const std::string& path) {
  register_builtins();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!handle) throw std::runtime_error("plugin '" + path + "': cannot load: " + std::string(dlerror()));
  using RegisterFn = void (*)();
  auto fn = reinterpret_cast<RegisterFn>(dlsym(handle, "gsdiff_plugin_register"));
  if (!fn)
    throw std::runtime_error("plugin '" + path + "': no symbol gsdiff_plugin_register "
                             "(declare it extern \"C\" void gsdiff_plugin_register())");
  fn();
}

}  // namespace gsdiff
