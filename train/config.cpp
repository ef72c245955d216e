// Parses the run configuration into typed options; --set overrides by dotted path.
#include "train/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <utility>

namespace gsdiff {

namespace {

using nlohmann::json;

// Runs `body` with a JsonReader over j[section]; rewrites "field 'k'" as "field 'section.k'".
template <typename F>
void read_section(const json& j, const std::string& section, F body) {
  static const json empty = json::object();
  const json& sub = j.contains(section) ? j.at(section) : empty;
  try {
    JsonReader r(sub, "config");
    body(r);
    r.finish();
  } catch (const ConfigError& e) {
    std::string msg = e.what();
    auto pos = msg.find("field '");
    if (pos != std::string::npos) msg.insert(pos + 7, section + ".");
    else msg = "config: section '" + section + "': " + msg;
    throw ConfigError(msg);
  }
}

// Every numeric train field's range, named by its dotted key.
void check_train_ranges(const TrainOptions& t, JsonReader& r) {
  if (t.steps() < 0) r.fail("steps", "must be >= 0");
  if (t.accumulate() < 1) r.fail("accumulate", "must be >= 1");
  if (!(t.lr() > 0) || !std::isfinite(t.lr())) r.fail("lr", "must be a finite number > 0");
  if (!(t.weight_decay() >= 0)) r.fail("weight_decay", "must be >= 0");
  if (!(t.beta1() >= 0 && t.beta1() < 1)) r.fail("beta1", "must be in [0, 1)");
  if (!(t.beta2() >= 0 && t.beta2() < 1)) r.fail("beta2", "must be in [0, 1)");
  if (!(t.adam_eps() > 0)) r.fail("adam_eps", "must be > 0");
  if (t.warmup_steps() < 0) r.fail("warmup_steps", "must be >= 0 (0 = no warmup)");
  if (!(t.ema_decay() >= 0 && t.ema_decay() < 1)) r.fail("ema_decay", "must be in [0, 1) (0 = no EMA)");
  if (!(t.label_dropout() >= 0 && t.label_dropout() <= 1)) r.fail("label_dropout", "must be in [0, 1]");
  const std::pair<const char*, int64_t> every[] = {{"log_every", t.log_every()}, {"checkpoint_every", t.checkpoint_every()},
                                                  {"sample_every", t.sample_every()}, {"eval_every", t.eval_every()}};
  for (const auto& [key, v] : every)
    if (v < 0) r.fail(key, "must be >= 0 (0 = never)");
  if (t.keep_checkpoints() < 1) r.fail("keep_checkpoints", "must be >= 1");
  if (t.max_consecutive_skips() < 1) r.fail("max_consecutive_skips", "must be >= 1");
}

}  // namespace

namespace {

// objective: the loss and its time sampling.
void read_objective_section(const json& j, ObjectiveOptions& o) {
  read_section(j, "objective", [&](JsonReader& r) {
    o.name(r.choice("name", o.name(), {"elbo", "simple", "weighted", "hybrid", "masked-ce", "classifier"}));
    o.low_discrepancy(r.get("low_discrepancy", o.low_discrepancy()));
    o.weighting(r.choice("weighting", o.weighting(), {"min-snr", "likelihood", "flow-matching", "edm"}));
    o.edm_p_mean(r.get("edm_p_mean", o.edm_p_mean()));
    o.edm_p_std(r.get("edm_p_std", o.edm_p_std()));
    if (!(o.edm_p_std() > 0)) r.fail("edm_p_std", "must be > 0");
    o.min_snr_gamma(r.get("min_snr_gamma", o.min_snr_gamma()));
    o.hybrid_lambda(r.get("hybrid_lambda", o.hybrid_lambda()));
    o.reconstruction_prob(r.get("reconstruction_prob", o.reconstruction_prob()));
    if (!(o.reconstruction_prob() > 0 && o.reconstruction_prob() < 1))
      throw ConfigError("config: field 'objective.reconstruction_prob' must lie in (0, 1), got " +
                        std::to_string(o.reconstruction_prob()));
    o.time_sampling(r.choice("time_sampling", o.time_sampling(), {"uniform", "logsnr", "loss-aware"}));
    o.loss_aware_bins(r.get("loss_aware_bins", o.loss_aware_bins()));
    if (o.loss_aware_bins() < 0) r.fail("loss_aware_bins", "must be >= 0 (0: T, or 64 in continuous time)");
    o.loss_aware_history(r.get("loss_aware_history", o.loss_aware_history()));
    if (o.loss_aware_history() < 1) r.fail("loss_aware_history", "must be >= 1");
    o.loss_aware_uniform(r.get("loss_aware_uniform", o.loss_aware_uniform()));
    if (!(o.loss_aware_uniform() > 0 && o.loss_aware_uniform() <= 1)) r.fail("loss_aware_uniform", "must lie in (0, 1]");
    if (o.time_sampling() != "uniform" && o.name() != "elbo" && o.name() != "masked-ce")
      r.fail("time_sampling", "'" + o.time_sampling() + "' applies to the elbo and masked-ce objectives only (got '" +
                                  o.name() + "': its other terms would be reweighted)");
  });
}

// train: optimizer, schedule, EMA, logging and checkpoint cadence.
void read_train_section(const json& j, TrainOptions& t) {
  read_section(j, "train", [&](JsonReader& r) {
    t.steps(r.get("steps", t.steps()));
    t.optimizer(r.choice("optimizer", t.optimizer(), {"adamw", "sgd"}));
    t.lr(r.get("lr", t.lr()));
    t.weight_decay(r.get("weight_decay", t.weight_decay()));
    t.beta1(r.get("beta1", t.beta1()));
    t.beta2(r.get("beta2", t.beta2()));
    t.adam_eps(r.get("adam_eps", t.adam_eps()));
    t.warmup_steps(r.get("warmup_steps", t.warmup_steps()));
    t.lr_schedule(r.choice("lr_schedule", t.lr_schedule(), {"constant", "cosine"}));
    t.grad_clip(r.get("grad_clip", t.grad_clip()));
    t.ema_decay(r.get("ema_decay", t.ema_decay()));
    t.ema_warmup(r.get("ema_warmup", t.ema_warmup()));
    t.accumulate(r.get("accumulate", t.accumulate()));
    t.seed(r.get("seed", t.seed()));
    t.label_dropout(r.get("label_dropout", t.label_dropout()));
    t.log_every(r.get("log_every", t.log_every()));
    t.checkpoint_every(r.get("checkpoint_every", t.checkpoint_every()));
    t.keep_checkpoints(r.get("keep_checkpoints", t.keep_checkpoints()));
    t.sample_every(r.get("sample_every", t.sample_every()));
    t.eval_every(r.get("eval_every", t.eval_every()));
    t.max_consecutive_skips(r.get("max_consecutive_skips", t.max_consecutive_skips()));
    t.tensorboard(r.get("tensorboard", t.tensorboard()));
    t.precision(r.choice("precision", t.precision(), {"fp32", "bf16"}));
    check_train_ranges(t, r);
  });
}

// sample: samples written during training.
void read_sample_section(const json& j, SampleOptions& s) {
  read_section(j, "sample", [&](JsonReader& r) {
    s.steps(r.get("steps", s.steps()));
    s.num(r.get("num", s.num()));
    s.seed(r.get("seed", s.seed()));
    s.ema(r.get("ema", s.ema()));
    if (s.steps() < 0) r.fail("steps", "must be >= 0 (0 = the process's T, or 100 in continuous time)");
    if (s.num() < 0) r.fail("num", "must be >= 0 (0 = no samples during training)");
  });
}

// eval: the bound's estimator (Monte Carlo or quadrature) and its budget.
void read_eval_section(const json& j, EvalOptions& e) {
  read_section(j, "eval", [&](JsonReader& r) {
    e.limit(r.get("limit", e.limit()));
    if (e.limit() < 0) r.fail("limit", "must be >= 0 (0 = all examples)");
    e.batch_size(r.get("batch_size", e.batch_size()));
    e.exact(r.get("exact", e.exact()));
    e.time_samples(r.get("time_samples", e.time_samples()));
    e.quadrature_tol(r.get("quadrature_tol", e.quadrature_tol()));
    e.max_nodes(r.get("max_nodes", e.max_nodes()));
    e.noise_samples(r.get("noise_samples", e.noise_samples()));
    if (e.noise_samples() < 1) r.fail("noise_samples", "must be >= 1");
    e.quadrature_nodes(r.get("quadrature_nodes", e.quadrature_nodes()));
    e.time_sampling(r.choice("time_sampling", e.time_sampling(), {"auto", "uniform", "logsnr"}));
    e.target_stderr(r.get("target_stderr", e.target_stderr()));
    e.max_passes(r.get("max_passes", e.max_passes()));
    e.seed(r.get("seed", e.seed()));
    e.ema(r.get("ema", e.ema()));
    if (e.batch_size() < 1) r.fail("batch_size", "must be >= 1");
    if (e.time_samples() < 1) r.fail("time_samples", "must be >= 1");
    if (!(e.quadrature_tol() > 0)) r.fail("quadrature_tol", "must be > 0 (bits per dimension)");
    if (e.max_nodes() < 84) r.fail("max_nodes", "must be >= 84 (the first graded panels)");
    if (e.quadrature_nodes() < 0) r.fail("quadrature_nodes", "must be >= 0");
    if (e.target_stderr() < 0) r.fail("target_stderr", "must be >= 0");
    if (e.max_passes() < 1) r.fail("max_passes", "must be >= 1");
  });
}

// debug: fault injection for the tests.
void read_debug_section(const json& j, DebugOptions& d) {
  read_section(j, "debug", [&](JsonReader& r) {
    d.nan_at_step(r.get("nan_at_step", d.nan_at_step()));
    d.fault(r.choice("fault", d.fault(), {"none", "kill", "stop"}));
    d.fault_step(r.get("fault_step", d.fault_step()));
    d.fault_rank(r.get("fault_rank", d.fault_rank()));
  });
}

}  // namespace

Config parse_config(const json& j) {
  if (!j.is_object()) throw ConfigError("config: expected a JSON object at the top level");
  static const std::vector<std::string> sections = {"process", "model", "data", "eval_data", "objective",
                                                    "train",   "sample", "eval", "debug", "comment"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(sections.begin(), sections.end(), it.key()) == sections.end())
      throw ConfigError("config: key '" + it.key() + "' is not a known section; known: " + JsonReader::join(sections));
  Config c;
  for (const char* req : {"process", "model", "data"}) {
    if (!j.contains(req)) throw ConfigError(std::string("config: section '") + req + "' is required");
    if (!j.at(req).is_object()) throw ConfigError(std::string("config: section '") + req + "' must be an object");
  }
  c.process = j.at("process");
  c.model = j.at("model");
  c.data = j.at("data");
  c.eval_data = j.value("eval_data", json::object());
  if (!c.eval_data.is_object()) throw ConfigError("config: section 'eval_data' must be an object");

  read_objective_section(j, c.objective);
  read_train_section(j, c.train);
  read_sample_section(j, c.sample);
  read_eval_section(j, c.eval);
  read_debug_section(j, c.debug);
  c.resolved = to_json(c);
  if (j.contains("comment")) c.resolved["comment"] = j.at("comment");
  return c;
}

json to_json(const Config& c) {
  const auto &o = c.objective;
  const auto &t = c.train;
  const auto &s = c.sample;
  const auto &e = c.eval;
  return json{
      {"process", c.process},
      {"model", c.model},
      {"data", c.data},
      {"eval_data", c.eval_data},
      {"objective", {{"name", o.name()}, {"low_discrepancy", o.low_discrepancy()}, {"weighting", o.weighting()},
                     {"min_snr_gamma", o.min_snr_gamma()}, {"hybrid_lambda", o.hybrid_lambda()},
                     {"reconstruction_prob", o.reconstruction_prob()}, {"time_sampling", o.time_sampling()},
                     {"loss_aware_bins", o.loss_aware_bins()}, {"loss_aware_history", o.loss_aware_history()},
                     {"loss_aware_uniform", o.loss_aware_uniform()}, {"edm_p_mean", o.edm_p_mean()},
                     {"edm_p_std", o.edm_p_std()}}},
      {"train", {{"steps", t.steps()}, {"optimizer", t.optimizer()}, {"lr", t.lr()}, {"weight_decay", t.weight_decay()}, {"beta1", t.beta1()},
                 {"beta2", t.beta2()}, {"adam_eps", t.adam_eps()}, {"warmup_steps", t.warmup_steps()},
                 {"lr_schedule", t.lr_schedule()}, {"grad_clip", t.grad_clip()}, {"ema_decay", t.ema_decay()},
                 {"ema_warmup", t.ema_warmup()}, {"accumulate", t.accumulate()}, {"seed", t.seed()},
                 {"label_dropout", t.label_dropout()}, {"log_every", t.log_every()},
                 {"checkpoint_every", t.checkpoint_every()}, {"keep_checkpoints", t.keep_checkpoints()},
                 {"sample_every", t.sample_every()}, {"eval_every", t.eval_every()},
                 {"max_consecutive_skips", t.max_consecutive_skips()}, {"tensorboard", t.tensorboard()}, {"precision", t.precision()}}},
      {"sample", {{"steps", s.steps()}, {"num", s.num()}, {"seed", s.seed()}, {"ema", s.ema()}}},
      {"eval", {{"limit", e.limit()}, {"batch_size", e.batch_size()}, {"exact", e.exact()},
                {"time_samples", e.time_samples()}, {"quadrature_tol", e.quadrature_tol()}, {"max_nodes", e.max_nodes()}, {"noise_samples", e.noise_samples()},
                {"quadrature_nodes", e.quadrature_nodes()}, {"time_sampling", e.time_sampling()},
                {"target_stderr", e.target_stderr()}, {"max_passes", e.max_passes()}, {"seed", e.seed()}, {"ema", e.ema()}}},
      {"debug", {{"nan_at_step", c.debug.nan_at_step()}, {"fault", c.debug.fault()}, {"fault_step", c.debug.fault_step()},
                 {"fault_rank", c.debug.fault_rank()}}},
  };
}

void apply_set(json& j, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set '" + assignment + "': expected key.path=value");
  std::string path = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const std::exception&) {
    value = text;  // not JSON: a bare string
  }
  json* node = &j;
  std::stringstream ss(path);
  std::string part, done;
  std::vector<std::string> parts;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty()) throw ConfigError("--set '" + assignment + "': empty key in '" + path + "'");
    if (!node->is_object()) throw ConfigError("--set: '" + done + "' is not an object");
    if (i + 1 == parts.size()) {
      (*node)[parts[i]] = value;
    } else {
      node = &(*node)[parts[i]];
      if (node->is_null()) *node = json::object();
      done += (done.empty() ? "" : ".") + parts[i];
    }
  }
}

Config load_config(const std::string& path, const std::vector<std::string>& sets) {
  std::ifstream in(path);
  if (!in) throw ConfigError("config: cannot open '" + path + "'");
  json j;
  try {
    j = json::parse(in, nullptr, true, /*ignore_comments=*/true);
  } catch (const std::exception& e) {
    throw ConfigError("config '" + path + "': invalid JSON: " + e.what());
  }
  for (const auto& s : sets) apply_set(j, s);
  return parse_config(j);
}

json eval_data_config(const Config& c) {
  json d = c.data;
  for (const char* k : {"batch_size", "seed", "shuffle", "drop_last", "prefetch", "remainder"}) d.erase(k);
  for (auto it = c.eval_data.begin(); it != c.eval_data.end(); ++it) d[it.key()] = it.value();
  return d;
}

}  // namespace gsdiff
