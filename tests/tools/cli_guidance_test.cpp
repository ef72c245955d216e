// `gsdiff sample --class C --guidance W`: classifier-free guidance from the command line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <cmath>

#include "cli_test_util.h"

namespace {

using gsdiff::testing::fresh_out_dir;
using gsdiff::testing::kQuickstartConfig;
using gsdiff::testing::run_cli;

const std::string kTinyGuided = " --set train.steps=20 --set data.batch_size=8 --set sample.num=4 --set sample.steps=3"
                                " --set train.log_every=0 --threads 1 --quiet";

using gsdiff::testing::bytes_of;

}  // namespace

TEST(CliGuidance, ClassAndGuidanceSteerTheSamples) {
  auto out = fresh_out_dir("guided");
  auto tr = run_cli("train --config " + kQuickstartConfig + kTinyGuided + " --set model.num_classes=10 --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  const std::string ckpt = out + "/ckpt-00000020.gsdiff";
  auto sample = [&](const std::string& flags, const std::string& name) {
    auto r = run_cli("sample --checkpoint " + ckpt + " --num 4 --steps 10 --seed 5 --threads 1 " + flags + " --out " +
                     out + "/" + name);
    EXPECT_EQ(r.rc, 0) << flags << "\n" << r.out;
    return bytes_of(out + "/" + name);
  };
  auto c3 = sample("--class 3", "c3.png"), c3_again = sample("--class 3", "c3b.png");
  auto c5 = sample("--class 5", "c5.png"), c3_w2 = sample("--class 3 --guidance 2", "c3w2.png");
  auto cycle = sample("--class -1 --guidance 1", "cycle.png");
  ASSERT_FALSE(c3.empty());
  EXPECT_EQ(c3, c3_again);  // same seed, same class: the same grid
  EXPECT_NE(c3, c5);        // the label reaches the network
  EXPECT_NE(c3, c3_w2);     // the guidance weight changes the chain
  EXPECT_FALSE(cycle.empty());

  auto bad = run_cli("sample --checkpoint " + ckpt + " --class 10 --num 2 --out " + out + "/bad.png");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--class: expected -1 or 0..9"), std::string::npos) << bad.out;
  auto no_class = run_cli("sample --checkpoint " + ckpt + " --guidance 2 --num 2 --out " + out + "/bad.png");
  EXPECT_NE(no_class.rc, 0);
  EXPECT_NE(no_class.out.find("--guidance needs --class"), std::string::npos) << no_class.out;
}

TEST(CliGuidance, UnconditionalCheckpointRefusesClass) {
  auto out = fresh_out_dir("unguided");
  auto tr = run_cli("train --config " + kQuickstartConfig + " --set train.steps=2 --set data.batch_size=4"
                    " --set sample.num=2 --set sample.steps=2 --threads 1 --quiet --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  auto r = run_cli("sample --checkpoint " + out + "/ckpt-00000002.gsdiff --class 1 --num 2 --out " + out + "/x.png");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("not class-conditional"), std::string::npos) << r.out;
}

// A discrete class-conditional model (blackout on Fashion-MNIST, tiny): --guidance is D-CFG's gamma on the reverse
// step (Schiff et al. 2025). gamma = 1 is the conditional model: the same chain, byte for byte, as no --guidance
// (the same draws from the same probabilities, renormalised); tweedie and tau-leaping take guidance too.
TEST(CliGuidance, DiscreteGammaOneIsTheConditionalModelAndOtherSamplersTakeIt) {
  auto out = fresh_out_dir("dcfg");
  auto tr = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/blackout-fashion.json"
                    " --set process.steps=20 --set train.steps=4 --set data.batch_size=4 --set model.ch=8"
                    " --set model.ch_mult=[1,2] --set model.num_res_blocks=1 --set model.attn_resolutions=[]"
                    " --set model.image_size=28 --set model.in_channels=1 --set model.num_groups=4"
                    " --set data.name=fashion-mnist --set data.root=/usr/share/datasets/fashion-mnist"
                    " --set model.num_classes=10 --set train.label_dropout=0.2 --set sample.num=0"
                    " --set train.log_every=0 --threads 1 --quiet --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  const std::string ckpt = out + "/ckpt-00000004.gsdiff";
  auto sample = [&](const std::string& flags, const std::string& name) {
    auto r = run_cli("sample --checkpoint " + ckpt + " --num 3 --steps 6 --seed 2 --threads 1 " + flags + " --out " +
                     out + "/" + name);
    EXPECT_EQ(r.rc, 0) << flags << "\n" << r.out;
    return bytes_of(out + "/" + name);
  };
  auto plain = sample("--class 4", "c4.png"), gamma1 = sample("--class 4 --guidance 1", "c4g1.png");
  ASSERT_FALSE(plain.empty());
  EXPECT_EQ(plain, gamma1);
  EXPECT_FALSE(sample("--class 4 --guidance 3", "c4g3.png").empty());
  EXPECT_FALSE(sample("--class 4 --guidance 3 --sampler tweedie", "c4g3tw.png").empty());
  EXPECT_FALSE(sample("--class 4 --guidance 3 --sampler tau-leaping", "c4g3tau.png").empty());
}

// `gsdiff train` trains a classifier (model.type classifier, objective.name classifier) and `gsdiff sample
// --classifier` takes it for D-CBG: on 28 x 28 images of 256 levels the exact enumeration (784 x 256 classifier rows
// per example and step) is refused when asked for, and --classifier-approx auto takes the Taylor approximation; a
// checkpoint that is not a classifier is refused; `gsdiff eval` scores a classifier by its held-out cross-entropy and
// refuses the bound's flags for it.
TEST(CliGuidance, ClassifierTrainsEvaluatesAndGuidesLargeImagesByTaylor) {
  auto out = fresh_out_dir("dcbg");
  const std::string tiny = " --set process.steps=20 --set train.steps=2 --set data.batch_size=4 --set train.log_every=0"
                           " --set data.name=fashion-mnist --set data.root=/usr/share/datasets/fashion-mnist"
                           " --set sample.num=0 --threads 1 --quiet";
  const std::string trunk = "{\"type\":\"unet\",\"in_channels\":1,\"input_states\":256,\"input_emb_dim\":2,\"ch\":8,"
                            "\"ch_mult\":[1,2],\"num_res_blocks\":1,\"attn_resolutions\":[],\"image_size\":28,\"num_groups\":4}";
  const std::string cfg = std::string(GSDIFF_SOURCE_DIR) + "/configs/blackout-fashion.json";
  auto clf = run_cli("train --config " + cfg + tiny + " --set objective.name=classifier --set train.eval_every=0"
                     " --set 'model={\"type\":\"classifier\",\"classes\":10,\"features\":8,\"trunk\":" + trunk + "}' --out " + out + "/clf");
  ASSERT_EQ(clf.rc, 0) << clf.out;
  auto gen = run_cli("train --config " + cfg + tiny + " --set model.ch=8 --set model.ch_mult=[1,2] --set model.num_res_blocks=1"
                     " --set model.attn_resolutions=[] --set model.image_size=28 --set model.in_channels=1"
                     " --set model.num_groups=4 --out " + out + "/gen");
  ASSERT_EQ(gen.rc, 0) << gen.out;
  const std::string g = out + "/gen/ckpt-00000002.gsdiff", c = out + "/clf/ckpt-00000002.gsdiff";
  const std::string guided = "sample --checkpoint " + g + " --classifier " + c + " --class 1 --guidance 2 --num 2 --steps 2 --out ";
  auto taylor = run_cli(guided + out + "/t.png");
  ASSERT_EQ(taylor.rc, 0) << taylor.out;
  EXPECT_NE(taylor.out.find("D-CBG: taylor scores of 784 positions x 256 states"), std::string::npos) << taylor.out;
  EXPECT_EQ(gsdiff::testing::bytes_of(out + "/t.png").substr(1, 3), "PNG");
  auto exact = run_cli(guided + out + "/x.png --classifier-approx exact");
  EXPECT_NE(exact.rc, 0);
  EXPECT_NE(exact.out.find("--classifier-approx taylor"), std::string::npos) << exact.out;
  auto bad = run_cli(guided + out + "/x.png --classifier-approx first");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--classifier-approx: expected auto, exact or taylor"), std::string::npos) << bad.out;
  auto alone = run_cli("sample --checkpoint " + g + " --classifier-approx taylor --num 1 --out " + out + "/x.png");
  EXPECT_NE(alone.rc, 0);
  EXPECT_NE(alone.out.find("needs --classifier"), std::string::npos) << alone.out;
  auto notclf = run_cli("sample --checkpoint " + g + " --classifier " + g + " --class 1 --num 1 --out " + out + "/x.png");
  EXPECT_NE(notclf.rc, 0);
  EXPECT_NE(notclf.out.find("not a classifier"), std::string::npos) << notclf.out;

  auto ev = run_cli("eval --checkpoint " + c + " --limit 8 --time-samples 2");
  ASSERT_EQ(ev.rc, 0) << ev.out;
  const auto line = ev.out.rfind("\n{");
  auto j = nlohmann::json::parse(ev.out.substr(line == std::string::npos ? ev.out.find('{') : line + 1));
  EXPECT_GT(j.at("cross_entropy").get<double>(), 0.0) << ev.out;
  EXPECT_NEAR(j.at("chance_cross_entropy").get<double>(), std::log(10.0), 1e-12);
  EXPECT_GE(j.at("accuracy").get<double>(), 0.0);
  EXPECT_LE(j.at("accuracy").get<double>(), 1.0);
  EXPECT_EQ(j.at("examples").get<int64_t>(), 8);
  auto exact_eval = run_cli("eval --checkpoint " + c + " --limit 4 --exact");
  EXPECT_NE(exact_eval.rc, 0);
  EXPECT_NE(exact_eval.out.find("--exact: a classifier checkpoint has no likelihood bound"), std::string::npos) << exact_eval.out;
}
