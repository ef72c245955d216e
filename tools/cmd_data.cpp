// `gsdiff data`: data utilities -- text8ify (any text to text8 form) and check (load a data config).
#include <cxxopts.hpp>

#include <fstream>
#include <iostream>

#include "data/factory.h"
#include "data/text8ify.h"
#include "tools/commands.h"

namespace gsdiff::cli {

int cmd_data(int argc, char** argv) {
  cxxopts::Options o(argv[0],
                     "Data utilities.\n\n"
                     "  gsdiff data text8ify INPUT OUTPUT\n"
                     "      Convert any UTF-8 text to text8 form: ASCII letters lower-cased, every run of other\n"
                     "      bytes (digits, punctuation, whitespace, and all non-ASCII bytes, so letters such as\n"
                     "      'e' with an accent count as separators) becomes one space; no leading or trailing\n"
                     "      space, no final newline. Streams through a fixed 1 MiB buffer.\n"
                     "  gsdiff data check CONFIG\n"
                     "      Load a dataset from a JSON object (inline, or a file holding it, or a file whose\n"
                     "      \"data\" key holds it) and print its size, example shape and kind.\n");
  o.add_options()("h,help", "show this help");
  o.positional_help("ACTION ARGS...");
  // Positionals are taken as they are: cxxopts would split a vector value at commas,
  // which breaks inline JSON.
  bool help = false;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help")
      help = true;
    else if (a.size() > 1 && a[0] == '-' && a[1] == '-')
      throw std::invalid_argument("unknown option '" + a + "' (see gsdiff data --help)");
    else
      pos.push_back(a);
  }
  if (help || pos.empty()) {
    std::cout << o.help() << "\n";
    return help ? 0 : 2;
  }
  const std::string action = pos[0];
  const std::vector<std::string> rest(pos.begin() + 1, pos.end());
  if (action == "text8ify") {
    if (rest.size() != 2) throw std::invalid_argument("text8ify expects INPUT OUTPUT (see gsdiff data --help)");
    auto st = data::text8ify_file(rest[0], rest[1]);
    std::cout << "text8ify: " << st.bytes_in << " bytes in, " << st.chars_out << " characters out -> " << rest[1] << "\n";
    if (st.chars_out == 0) std::cerr << "text8ify: warning: the input has no ASCII letters; the output is empty\n";
    return 0;
  }
  if (action == "check") {
    if (rest.size() != 1) throw std::invalid_argument("check expects one CONFIG (JSON text or file)");
    nlohmann::json cfg;
    const std::string& s = rest[0];
    if (!s.empty() && s.front() == '{') {
      cfg = nlohmann::json::parse(s);
    } else {
      std::ifstream f(s);
      if (!f) throw std::runtime_error(s + ": file not found");
      cfg = nlohmann::json::parse(f);
      if (cfg.contains("data")) cfg = cfg["data"];
    }
    auto ds = data::make_dataset(cfg);
    nlohmann::json out = {{"name", ds->name()},       {"size", ds->size()},
                          {"example_shape", ds->example_shape()}, {"kind", data::to_string(ds->kind())},
                          {"categories", ds->categories()}, {"num_classes", ds->num_classes()}};
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  throw std::invalid_argument("unknown data action '" + action + "'; known: text8ify, check");
}

}  // namespace gsdiff::cli
