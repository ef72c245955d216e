// GoogleTest entry point shared by every test executable: seeds torch and sets threads.
#include <gtest/gtest.h>
#include <torch/torch.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  torch::manual_seed(0);
  torch::set_num_threads(1);
  return RUN_ALL_TESTS();
}
