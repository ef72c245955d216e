// A trained uniform-kernel text model's continuous-time bound through `gsdiff eval`: it converges in quadrature
// nodes under the Bayes reading (and keeps growing under the masked one), and Monte Carlo agrees with it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tools/cli_test_util.h"

namespace uniform_bound {

namespace fs = std::filesystem;
using nlohmann::json;
using gsdiff::testing::fresh_out_dir;
using gsdiff::testing::gcide_text8;
using gsdiff::testing::run_cli;

// Trains `steps` steps of a 1-layer, 32-wide transformer on GCIDE text (L = 32) with the uniform kernel in
// continuous time (cosine survival schedule) and the given categorical reading; returns the checkpoint.
std::string train(const std::string& reading, int steps) {
  auto out = fresh_out_dir("uniform_bound_" + reading);
  auto r = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/text8-uniform.json --out " + out +
                   " --set process.steps=0 --set process.schedule=cosine --set process.parameterization=" + reading +
                   " --set objective.name=elbo --set model.dim=32 --set model.depth=1 --set model.num_heads=2"
                   " --set model.cond_dim=16 --set model.dropout=0.0 --set data.path=" + gcide_text8() +
                   " --set data.seq_len=32 --set data.batch_size=16 --set data.train_frac=0.9 --set data.valid_frac=0.95"
                   " --set train.steps=" + std::to_string(steps) + " --set train.lr=2e-3 --set train.warmup_steps=0"
                   " --set train.ema_decay=0 --set train.log_every=0 --set train.checkpoint_every=0"
                   " --set train.tensorboard=false --set sample.num=0 --threads 1 --quiet");
  EXPECT_EQ(r.rc, 0) << r.out;
  char ck[32];
  std::snprintf(ck, sizeof ck, "/ckpt-%08d.gsdiff", steps);
  return out + ck;
}

json eval(const std::string& ckpt, const std::string& flags) {
  auto r = run_cli("eval --checkpoint " + ckpt + " --limit 64 --batch-size 64 --per-example --threads 1 " + flags);
  EXPECT_EQ(r.rc, 0) << r.out;
  auto pos = r.out.rfind("\n{");
  return json::parse(r.out.substr(pos == std::string::npos ? r.out.find('{') : pos + 1));
}

double paired_mean(const json& a, const json& b, double* se) {
  auto x = a["per_example"].get<std::vector<double>>(), y = b["per_example"].get<std::vector<double>>();
  EXPECT_EQ(x.size(), y.size());
  double m = 0, m2 = 0;
  for (size_t i = 0; i < x.size(); ++i) m += x[i] - y[i], m2 += (x[i] - y[i]) * (x[i] - y[i]);
  const double n = double(x.size());
  m /= n;
  *se = std::sqrt((m2 / n - m * m) * n / (n - 1) / n);
  return m;
}

// Issue 19 item 10 measured a trained uniform model's bound growing about like log(nodes) (8, 64, 256 nodes: 3.53,
// 3.72, 3.80 bits/char): a network whose error does not shrink as t -> 0 makes the masked reading's integrand c / t.
// Here, on one trained network per reading and the same 64 test sequences and x_t noise for every rule:
//  - masked: the 256-node bound exceeds the 32-node one by > 0.01 bits/char (it diverges; measured below);
//  - bayes: the 32-, 256-node and adaptive bounds agree within the adaptive rule's reported quadrature error plus
//    0.002 bits/char, the adaptive rule converges to 0.003 bits/char (reports "exact"), and Monte Carlo (64
//    t ~ U(t_min, 1) per example, fresh x_t) agrees with it within 4 standard errors of the paired difference.
// (With common random numbers a categorical x_t jumps between states as t moves, so the integrand is piecewise
// smooth with many jumps and the quadrature error falls like 1 / nodes: measured 0.0030, 0.0020, 0.0015 bits/char at
// 724, 1172, 2036 nodes on this model; the default tolerance 0.001 needs more than the default 2048 nodes here.)
TEST(CliUniformBound, TrainedModelsExactBoundConvergesAndMonteCarloAgrees) {
  if (gcide_text8().empty()) GTEST_SKIP() << "GCIDE text not found at " << gsdiff::testing::kGcide << " (Debian: dict-gcide)";
  const std::string masked = train("masked", 150), bayes = train("bayes", 150);

  auto m32 = eval(masked, "--seed 1 --quadrature-nodes 32"), m256 = eval(masked, "--seed 1 --quadrature-nodes 256");
  const double growth = m256["bound"].get<double>() - m32["bound"].get<double>();
  std::cout << "masked: 32 nodes " << m32["bound"] << ", 256 nodes " << m256["bound"] << " bits/char\n";
  EXPECT_GT(growth, 0.01) << "the masked reading's bound should keep growing in nodes";

  auto b32 = eval(bayes, "--seed 1 --quadrature-nodes 32"), b256 = eval(bayes, "--seed 1 --quadrature-nodes 256");
  auto adaptive = eval(bayes, "--seed 1 --exact --quadrature-tol 0.003");
  auto mc = eval(bayes, "--seed 2 --time-samples 64 --time-sampling uniform");
  std::cout << "bayes: 32 nodes " << b32["bound"] << ", 256 nodes " << b256["bound"] << ", adaptive " << adaptive["bound"]
            << " (" << adaptive["quadrature_nodes"] << " nodes, error " << adaptive["quadrature_error"] << "), Monte Carlo "
            << mc["bound"] << " +- " << mc["stderr"] << " bits/char\n";
  EXPECT_EQ(adaptive["estimate"], "exact") << adaptive.dump();
  const double tol = adaptive["quadrature_error"].get<double>() + 0.002;
  EXPECT_NEAR(b256["bound"].get<double>(), adaptive["bound"].get<double>(), tol);
  EXPECT_NEAR(b32["bound"].get<double>(), adaptive["bound"].get<double>(), tol);
  double se = 0;
  const double d = paired_mean(mc, adaptive, &se);
  EXPECT_LT(std::abs(d), 4 * se) << "Monte Carlo - exact = " << d << " +- " << se;
  EXPECT_GT(se, 0.0);
}

}  // namespace uniform_bound
