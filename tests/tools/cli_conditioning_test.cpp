// `gsdiff sample --prompt / --infill / --suffix / --inpaint --known`: known parts kept, bad input named.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "cli_test_util.h"

namespace {

namespace fs = std::filesystem;
using gsdiff::testing::run_cli;

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> v;
  for (std::string l; std::getline(f, l);) v.push_back(l);
  return v;
}

// A tiny masked-diffusion text model (16 characters, 2 training steps), trained once for the text tests.
const std::string& text_checkpoint() {
  static const std::string ck = [] {
    auto d = fs::temp_directory_path() / ("gsdiff_cli_conditioning_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    const std::string dir = d.string(), corpus = dir + "/t8.txt";
    {
      std::ofstream f(corpus);
      for (int i = 0; i < 200; ++i) f << "the cat sat on the mat and the dog ran ";
    }
    auto r = run_cli("train --config " + std::string(GSDIFF_SOURCE_DIR) + "/configs/text8-absorbing.json --set data.path=" +
                     corpus + " --set data.train_frac=0.8 --set data.valid_frac=0.9 --set data.seq_len=16"
                     " --set data.batch_size=4 --set model.dim=16 --set model.depth=1 --set model.num_heads=2"
                     " --set model.cond_dim=8 --set train.steps=2 --set train.eval_every=0 --set train.log_every=0"
                     " --set sample.num=2 --set sample.steps=2 --threads 1 --quiet --out " + dir + "/run");
    EXPECT_EQ(r.rc, 0) << r.out;
    return dir + "/run/ckpt-00000002.gsdiff";
  }();
  return ck;
}

// Samples 4 lines with `flags`; every line is 16 text8 characters.
std::vector<std::string> sample_text(const std::string& flags, const std::string& name) {
  const auto out = fs::path(text_checkpoint()).parent_path().string() + "/" + name;
  auto r = run_cli("sample --checkpoint " + text_checkpoint() + " --num 4 --steps 8 --seed 3 --threads 1 " + flags +
                   " --out " + out);
  EXPECT_EQ(r.rc, 0) << flags << "\n" << r.out;
  auto v = lines_of(out);
  EXPECT_EQ(v.size(), 4u) << flags;
  for (const auto& l : v) {
    EXPECT_EQ(l.size(), 16u) << flags << ": '" << l << "'";
    for (char c : l) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == ' ') << flags << ": '" << l << "'";
  }
  return v;
}

TEST(CliConditioning, PromptSuffixAndInfillKeepTheKnownCharacters) {
  for (const std::string sampler : {"ancestral", "mdlm-cached", "tau-leaping"}) {
    for (const auto& l : sample_text("--sampler " + sampler + " --prompt 'the ca'", "p_" + sampler + ".txt"))
      EXPECT_EQ(l.substr(0, 6), "the ca") << sampler;
    for (const auto& l : sample_text("--sampler " + sampler + " --suffix 'dog'", "s_" + sampler + ".txt"))
      EXPECT_EQ(l.substr(13), "dog") << sampler;
  }
  for (const auto& l : sample_text("--prompt 'the' --suffix 'mat'", "ps.txt")) {
    EXPECT_EQ(l.substr(0, 3), "the");
    EXPECT_EQ(l.substr(13), "mat");
  }
  const std::string pattern = "the c_t s_t on";  // 14 of 16 characters; '_' and the last two are generated
  for (const auto& l : sample_text("--infill '" + pattern + "'", "i.txt"))
    for (size_t i = 0; i < pattern.size(); ++i)
      if (pattern[i] != '_') {
        EXPECT_EQ(l[i], pattern[i]) << "position " << i << " of '" << l << "'";
      }
}

// The TorchScript export alone (gsdiff export) is conditioned the same way.
TEST(CliConditioning, AnExportKeepsTheKnownCharacters) {
  const auto dir = fs::path(text_checkpoint()).parent_path().string();
  auto ex = run_cli("export --checkpoint " + text_checkpoint() + " --out " + dir + "/m.pt");
  ASSERT_EQ(ex.rc, 0) << ex.out;
  auto r = run_cli("sample --model " + dir + "/m.pt --num 3 --steps 8 --seed 1 --threads 1 --infill 'the c_t' --out " +
                   dir + "/e.txt");
  ASSERT_EQ(r.rc, 0) << r.out;
  auto v = lines_of(dir + "/e.txt");
  ASSERT_EQ(v.size(), 3u);
  for (const auto& l : v) {
    EXPECT_EQ(l.substr(0, 5), "the c") << l;
    EXPECT_EQ(l.substr(6, 1), "t") << l;
  }
  auto bad = run_cli("sample --model " + dir + "/m.pt --num 1 --threads 1 --prompt 'the cat sat on the mat' --out " +
                     dir + "/e.txt");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--prompt: expected at most 16 characters"), std::string::npos) << bad.out;
}

// Each mistake: nonzero exit, one line naming the flag and what was expected, no backtrace.
TEST(CliConditioning, BadTextInputIsNamed) {
  const std::string base = "sample --checkpoint " + text_checkpoint() + " --num 2 --steps 2 --threads 1 --out " +
                           fs::path(text_checkpoint()).parent_path().string() + "/bad.txt ";
  struct Bad {
    std::string flags, message;
  };
  const std::vector<Bad> cases = {
      {"--prompt 'the cat sat on the mat'", "--prompt: expected at most 16 characters (the model's sequence length), got 22"},
      {"--prompt 'the' --suffix 'cat sat on mat'", "--prompt and --suffix: expected at most 16 characters together"},
      {"--prompt 'The'", "--prompt: character 'T' at position 0 is outside the text8 alphabet (a-z and space)"},
      {"--infill 'c_t 9'", "--infill: character '9' at position 4 is outside the text8 alphabet (a-z and space, '_' for unknown)"},
      {"--infill 'c_t' --prompt 'a'", "--infill: give the whole pattern alone"},
      {"--inpaint " + text_checkpoint() + " --known " + text_checkpoint(), "--inpaint/--known: expected an image model; this checkpoint's data is tokens"},
      {"--resample 2", "--resample needs --prompt"},
      {"--prompt 'the' --resample -1", "--resample: expected an integer"},
      // a sampler's own flag given for another sampler (the per-method options, parsed once)
      {"--prompt 'the' --eta 1", "--eta: an option of --sampler ddim or dpm-solver++, not of ancestral"},
      {"--sampler ddim --ordinal", "--ordinal: an option of --sampler tau-leaping, not of ddim"},
  };
  for (const auto& c : cases) {
    auto r = run_cli(base + c.flags);
    EXPECT_NE(r.rc, 0) << c.flags << "\n" << r.out;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << c.flags << "\n" << r.out;
    EXPECT_EQ(r.out.find("Exception raised from"), std::string::npos) << "a C++ backtrace:\n" << r.out;
  }
}

// Images: a tiny Fashion-MNIST model. A mask keeping the left half of a ramp image (tests/tools/png_io.py writes
// both PNGs and reads the output grid): every kept pixel comes back exactly (level v -> v / 127.5 - 1 -> v), for
// ancestral and for Heun with RePaint rounds. A text flag on it, a mask of the wrong size (the 32 x 32 grid PNG of
// one sample: 28 x 28 plus the grid's padding) and --inpaint alone are named.
TEST(CliConditioning, ImagesKeepTheKnownPixelsAndBadInputIsNamed) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "no Fashion-MNIST";
  auto out = gsdiff::testing::fresh_out_dir("conditioning_img");
  auto tr = run_cli("train --config " + gsdiff::testing::kQuickstartConfig + " --set train.steps=2 --set data.batch_size=4"
                    " --set sample.num=1 --set sample.steps=2 --threads 1 --quiet --out " + out);
  ASSERT_EQ(tr.rc, 0) << tr.out;
  const std::string ck = out + "/ckpt-00000002.gsdiff", base = "sample --checkpoint " + ck + " --num 1 --steps 10 --threads 1 ";
  const std::string py = std::string(GSDIFF_PYTHON) + " " + GSDIFF_SOURCE_DIR + "/tests/tools/png_io.py ";
  ASSERT_EQ(gsdiff::testing::run_shell(py + "mask " + out + "/mask.png && " + py + "known " + out + "/known.png").rc, 0);
  for (const std::string flags : {"", "--sampler heun --resample 2"}) {
    auto r = run_cli(base + flags + " --inpaint " + out + "/mask.png --known " + out + "/known.png --out " + out + "/o.png");
    ASSERT_EQ(r.rc, 0) << flags << "\n" << r.out;
    auto check = gsdiff::testing::run_shell(py + "check " + out + "/o.png");
    EXPECT_NE(check.out.find("kept_mismatches 0 "), std::string::npos) << flags << ": " << check.out;
    EXPECT_EQ(check.out.find("free_differs 0\n"), std::string::npos) << flags << ": the generated half is the known image";
  }
  auto grid = run_cli(base + "--out " + out + "/one.png");
  ASSERT_EQ(grid.rc, 0) << grid.out;
  auto text = run_cli(base + "--prompt 'the' --out " + out + "/x.png");
  EXPECT_NE(text.rc, 0);
  EXPECT_NE(text.out.find("--prompt: expected a text model (text8 characters); this checkpoint's data is images"),
            std::string::npos) << text.out;
  auto size = run_cli(base + "--inpaint " + out + "/one.png --known " + out + "/known.png --out " + out + "/x.png");
  EXPECT_NE(size.rc, 0);
  EXPECT_NE(size.out.find("--inpaint: expected a 28x28 PNG (the model's image size), got 32x32 grey"), std::string::npos)
      << size.out;
  auto alone = run_cli(base + "--inpaint " + out + "/mask.png --out " + out + "/x.png");
  EXPECT_NE(alone.rc, 0);
  EXPECT_NE(alone.out.find("--inpaint needs --known IMAGE.png"), std::string::npos) << alone.out;
  fs::remove_all(out);
}

}  // namespace
