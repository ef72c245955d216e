// Tests for the JSON factory: every dataset name, loader keys, unknown names/keys, bad values.
#include <torch/torch.h>

#include "data/factory.h"
#include "data/images.h"
#include "data/text8.h"
#include "data_test_helpers.h"

using namespace gsdiff::data;
using nlohmann::json;

TEST(Factory, ToySetsHaveTheCommonInterface) {
  auto gmm = make_dataset({{"name", "toy-gmm"}, {"n", 100}});
  EXPECT_EQ(gmm->size(), 100);
  EXPECT_EQ(gmm->example_shape(), std::vector<int64_t>{2});
  EXPECT_EQ(gmm->kind(), DataKind::Continuous);
  EXPECT_EQ(gmm->categories(), 0);
  EXPECT_EQ(gmm->num_classes(), 0);
  auto board = make_dataset({{"name", "toy-checkerboard"}, {"n", 64}, {"split", "test"}});
  EXPECT_EQ(board->get_batch({0, 1}, 0, 0).x.scalar_type(), torch::kFloat);
  auto mk = make_dataset({{"name", "toy-markov"}, {"n", 32}, {"seq_len", 5}});
  EXPECT_EQ(mk->kind(), DataKind::Tokens);
  EXPECT_EQ(mk->categories(), 4);
  EXPECT_EQ(mk->example_shape(), std::vector<int64_t>{5});
  // Same config, same data; another split, other data.
  auto a = make_dataset({{"name", "toy-gmm"}, {"n", 10}})->get_batch({0, 9}, 0, 0).x;
  auto b = make_dataset({{"name", "toy-gmm"}, {"n", 10}})->get_batch({0, 9}, 0, 0).x;
  auto c = make_dataset({{"name", "toy-gmm"}, {"n", 10}, {"split", "valid"}})->get_batch({0, 9}, 0, 0).x;
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
}

TEST(Factory, Text8WithOffsetsOrFractions) {
  gsdiff::testing::TempDir d;
  std::string text(2000, 'a');
  for (size_t i = 0; i < text.size(); i += 5) text[i] = ' ';
  gsdiff::testing::write_text(d.file("t8"), text);
  auto t = make_dataset({{"name", "text8"}, {"path", d.file("t8")}, {"split", "test"}, {"seq_len", 32},
                         {"train_end", 1800}, {"valid_end", 1900}});
  EXPECT_EQ(t->size(), 3);  // 100 / 32
  auto f = make_dataset({{"name", "text8"}, {"path", d.file("t8")}, {"split", "valid"}, {"seq_len", 32},
                         {"train_frac", 0.9}, {"valid_frac", 0.95}, {"batch_size", 2}});
  EXPECT_EQ(dynamic_cast<Text8Dataset&>(*f).range().begin, 1800);
  EXPECT_EQ(dynamic_cast<Text8Dataset&>(*f).range().end, 1900);
  EXPECT_ERROR_WITH(make_dataset({{"name", "text8"}, {"path", d.file("t8")}, {"train_end", 5}, {"train_frac", 0.5}}),
                    std::invalid_argument, "not both");
  EXPECT_ERROR_WITH(make_dataset({{"name", "text8"}}), std::invalid_argument, "needs key 'path'");
  EXPECT_ERROR_WITH(make_dataset({{"name", "text8"}, {"path", d.file("t8")}, {"crops", "all"}}), std::invalid_argument,
                    "'crops' must be random or chunks");
}

TEST(Factory, FashionMnistDefaultRootIfPresent) {
  if (!std::filesystem::exists(std::string(kDefaultFashionMnistRoot) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  auto ds = make_dataset({{"name", "fashion-mnist"}, {"split", "test"}});
  EXPECT_EQ(ds->size(), 10000);
  EXPECT_EQ(ds->kind(), DataKind::Image);
  EXPECT_EQ(ds->categories(), 256);
  EXPECT_EQ(ds->num_classes(), 10);
}

TEST(Factory, UnknownNamesKeysAndTypes) {
  EXPECT_ERROR_WITH(make_dataset({{"name", "imagenet"}}), std::invalid_argument, "unknown dataset 'imagenet'",
                    "fashion-mnist, mnist, cifar10, text8, toy-gmm, toy-checkerboard, toy-markov");
  EXPECT_ERROR_WITH(make_dataset({{"name", "toy-gmm"}, {"seq_lenn", 3}}), std::invalid_argument,
                    "unknown key 'seq_lenn' for dataset toy-gmm");
  EXPECT_ERROR_WITH(make_dataset({{"name", "cifar10"}, {"path", "/x"}}), std::invalid_argument, "unknown key 'path'");
  EXPECT_ERROR_WITH(make_dataset({{"name", "toy-gmm"}, {"n", "many"}}), std::invalid_argument, "key 'n' has the wrong type");
  EXPECT_ERROR_WITH(make_dataset({{"name", "toy-gmm"}, {"n", 0}}), std::invalid_argument, "'n' must be >= 1");
  EXPECT_ERROR_WITH(make_dataset(json::array()), std::invalid_argument, "expected a JSON object");
  EXPECT_ERROR_WITH(make_dataset({{"split", "train"}}), std::invalid_argument, "missing 'name'");
  EXPECT_ERROR_WITH(make_dataset({{"name", "toy-gmm"}, {"split", "dev"}}), std::invalid_argument, "unknown split 'dev'");
  EXPECT_ERROR_WITH(make_dataset({{"name", "cifar10"}, {"root", "/nonexistent"}}), std::runtime_error,
                    "/nonexistent/data_batch_1.bin", "file not found");
}

TEST(Factory, LoaderOptionsFromTheSameObject) {
  json cfg = {{"name", "toy-markov"}, {"n", 64}, {"batch_size", 16}, {"seed", 9}, {"shuffle", false},
              {"drop_last", false}, {"prefetch", 0}, {"remainder", "spread"}};
  auto ds = make_dataset(cfg);
  auto o = loader_options_from_json(cfg);
  EXPECT_EQ(o.batch_size, 16);
  EXPECT_EQ(o.seed, 9u);
  EXPECT_FALSE(o.shuffle);
  EXPECT_FALSE(o.drop_last);
  EXPECT_EQ(o.prefetch, 0);
  EXPECT_EQ(o.remainder, Remainder::Spread);
  Loader l(ds, o);
  EXPECT_EQ(l.batches_per_epoch(), 4);
  auto b = l.next();
  EXPECT_EQ(b.x.sizes(), (std::vector<int64_t>{16, 8}));
  EXPECT_TRUE(torch::equal(b.x, ds->get_batch({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 0, 0).x));
  EXPECT_ERROR_WITH(loader_options_from_json({{"batch_size", 0}}), std::invalid_argument, "'batch_size' must be >= 1");
  EXPECT_ERROR_WITH(loader_options_from_json({{"remainder", "pad"}}), std::invalid_argument, "unknown remainder 'pad'");
}
