// make_dataset / loader_options_from_json: the JSON face of data/.
#include "data/factory.h"

#include <algorithm>
#include <set>
#include <stdexcept>

#include "data/images.h"
#include "data/text8.h"
#include "data/toy.h"

namespace gsdiff::data {
namespace {

const std::vector<std::string> kLoaderKeys = {"batch_size", "seed", "shuffle", "drop_last", "prefetch", "remainder"};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

void check_keys(const nlohmann::json& cfg, const std::string& name, std::vector<std::string> allowed) {
  allowed.push_back("name");
  allowed.insert(allowed.end(), kLoaderKeys.begin(), kLoaderKeys.end());
  for (auto it = cfg.begin(); it != cfg.end(); ++it)
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end())
      throw std::invalid_argument("data config: unknown key '" + it.key() + "' for dataset " + name +
                                  " (known keys: " + join(allowed) + ")");
}

template <class T>
T get(const nlohmann::json& cfg, const std::string& key, const T& fallback) {
  if (!cfg.contains(key)) return fallback;
  try {
    return cfg.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument("data config: key '" + key + "' has the wrong type: " + cfg.at(key).dump());
  }
}

std::string require_string(const nlohmann::json& cfg, const std::string& key, const std::string& name) {
  if (!cfg.contains(key)) throw std::invalid_argument("data config: dataset " + name + " needs key '" + key + "'");
  return get<std::string>(cfg, key, "");
}

uint64_t toy_seed(const nlohmann::json& cfg) {
  // Each split of a toy set is a different fixed sample of the same distribution.
  const std::string split = get<std::string>(cfg, "split", "train");
  uint64_t k = split == "train" ? 0 : split == "valid" ? 1 : split == "test" ? 2 : 99;
  if (k == 99) throw std::invalid_argument("data config: unknown split '" + split + "', expected train, valid or test");
  return get<uint64_t>(cfg, "data_seed", 0) * 3 + k;
}

torch::Generator make_gen(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

int64_t positive(const nlohmann::json& cfg, const std::string& key, int64_t fallback) {
  int64_t v = get<int64_t>(cfg, key, fallback);
  if (v < 1) throw std::invalid_argument("data config: '" + key + "' must be >= 1, got " + std::to_string(v));
  return v;
}

}  // namespace

std::vector<std::string> dataset_names() {
  return {"fashion-mnist", "mnist", "cifar10", "text8", "toy-gmm", "toy-checkerboard", "toy-markov"};
}

std::shared_ptr<Dataset> make_dataset(const nlohmann::json& cfg) {
  if (!cfg.is_object()) throw std::invalid_argument("data config: expected a JSON object, got " + cfg.dump());
  if (!cfg.contains("name")) throw std::invalid_argument("data config: missing 'name' (one of " + join(dataset_names()) + ")");
  const std::string name = get<std::string>(cfg, "name", "");
  const std::string split = get<std::string>(cfg, "split", "train");
  if (name == "fashion-mnist" || name == "mnist") {
    check_keys(cfg, name, {"root", "split"});
    std::string root = name == "mnist" ? require_string(cfg, "root", name)
                                       : get<std::string>(cfg, "root", kDefaultFashionMnistRoot);
    return load_mnist_idx(root, split, name);
  }
  if (name == "cifar10") {
    check_keys(cfg, name, {"root", "split"});
    return load_cifar10(require_string(cfg, "root", name), split);
  }
  if (name == "text8") {
    check_keys(cfg, name, {"path", "split", "seq_len", "crops", "train_end", "valid_end", "train_frac", "valid_frac"});
    auto opt = Text8Options::standard(require_string(cfg, "path", name), parse_text8_split(split));
    opt.seq_len = positive(cfg, "seq_len", 256);
    if (cfg.contains("crops")) {
      std::string c = get<std::string>(cfg, "crops", "");
      if (c != "random" && c != "chunks")
        throw std::invalid_argument("data config: 'crops' must be random or chunks, got '" + c + "'");
      opt.crops = c == "random" ? CropMode::Random : CropMode::Chunks;
    }
    bool offsets = cfg.contains("train_end") || cfg.contains("valid_end");
    bool fracs = cfg.contains("train_frac") || cfg.contains("valid_frac");
    if (offsets && fracs)
      throw std::invalid_argument("data config: give split boundaries as offsets (train_end, valid_end) or as "
                                  "fractions (train_frac, valid_frac), not both");
    auto& b = opt.boundaries;
    b.train_end = get<int64_t>(cfg, "train_end", b.train_end);
    b.valid_end = get<int64_t>(cfg, "valid_end", b.valid_end);
    b.use_fractions = fracs;
    b.train_frac = get<double>(cfg, "train_frac", b.train_frac);
    b.valid_frac = get<double>(cfg, "valid_frac", b.valid_frac);
    return std::make_shared<Text8Dataset>(opt);
  }
  if (name == "toy-gmm") {
    check_keys(cfg, name, {"split", "n", "data_seed", "components", "radius", "std"});
    auto spec = GmmSpec::ring(positive(cfg, "components", 8), get<double>(cfg, "radius", 2.0), get<double>(cfg, "std", 0.1));
    auto x = sample_gmm(positive(cfg, "n", 10000), spec, make_gen(toy_seed(cfg)));
    return std::make_shared<TensorDataset>(name, x, DataKind::Continuous, 0);
  }
  if (name == "toy-checkerboard") {
    check_keys(cfg, name, {"split", "n", "data_seed", "cells"});
    auto x = sample_checkerboard(positive(cfg, "n", 10000), make_gen(toy_seed(cfg)), positive(cfg, "cells", 4));
    return std::make_shared<TensorDataset>(name, x, DataKind::Continuous, 0);
  }
  if (name == "toy-markov") {
    check_keys(cfg, name, {"split", "n", "data_seed", "seq_len"});
    auto chain = MarkovChain::example(positive(cfg, "seq_len", 8));
    auto x = chain.sample(positive(cfg, "n", 10000), make_gen(toy_seed(cfg)));
    return std::make_shared<TensorDataset>(name, x, DataKind::Tokens, chain.vocab());
  }
  throw std::invalid_argument("data config: unknown dataset '" + name + "'; known datasets: " + join(dataset_names()));
}

LoaderOptions loader_options_from_json(const nlohmann::json& cfg) {
  LoaderOptions o;
  if (!cfg.is_object()) return o;
  o.batch_size = positive(cfg, "batch_size", o.batch_size);
  o.seed = get<uint64_t>(cfg, "seed", o.seed);
  o.shuffle = get<bool>(cfg, "shuffle", o.shuffle);
  o.drop_last = get<bool>(cfg, "drop_last", o.drop_last);
  o.prefetch = get<int64_t>(cfg, "prefetch", o.prefetch);
  if (o.prefetch < 0) throw std::invalid_argument("data config: 'prefetch' must be >= 0");
  o.remainder = parse_remainder(get<std::string>(cfg, "remainder", "drop"));
  return o;
}

}  // namespace gsdiff::data
