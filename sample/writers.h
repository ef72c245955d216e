// Sample writers: PNG grids of uint8 images (libpng) and text8 lines from token ids.
#pragma once
#include <torch/torch.h>

#include <string>

namespace gsdiff {

// Tiles uint8 [N,C,H,W] (C = 1 or 3) into one uint8 [C, rows*(H+pad)+pad, cols*(W+pad)+pad] image;
// cols <= 0: ceil(sqrt(N)). Padding pixels are 0.
torch::Tensor make_grid(const torch::Tensor& images, int64_t cols = 0, int64_t pad = 2);
// uint8 [C,H,W] (C = 1 grey, 3 RGB) as the bytes of an 8-bit PNG.
std::string encode_png(const torch::Tensor& image);
// Writes encode_png(image) atomically (core/file_io.h): FileError names the file and errno (ENOSPC, EACCES).
void write_png(const std::string& path, const torch::Tensor& image);
// Reads an 8-bit grey or RGB PNG as uint8 [C,H,W].
torch::Tensor read_png(const std::string& path);
// make_grid + write_png.
void write_png_grid(const std::string& path, const torch::Tensor& images, int64_t cols = 0, int64_t pad = 2);

// Token ids [N,L] in 0..26 -> "a".."z" and ' ' (26); ids >= 27 (mask) print as '_'. One line per sample.
std::string tokens_to_text8(const torch::Tensor& tokens);
// Writes text atomically; FileError names the file and errno.
void write_text(const std::string& path, const std::string& text);

}  // namespace gsdiff
