// PNG grid writer/reader via libpng and the text8 token writer.
#include "sample/writers.h"

#include "core/file_io.h"

#include <png.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace gsdiff {

torch::Tensor make_grid(const torch::Tensor& images, int64_t cols, int64_t pad) {
  if (images.dim() != 4 || images.scalar_type() != torch::kUInt8)
    throw std::invalid_argument("make_grid: expected uint8 [N,C,H,W]");
  const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  if (cols <= 0) cols = int64_t(std::ceil(std::sqrt(double(N))));
  cols = std::max<int64_t>(1, std::min(cols, N));
  const int64_t rows = (N + cols - 1) / cols;
  auto grid = torch::zeros({C, rows * (H + pad) + pad, cols * (W + pad) + pad}, torch::kUInt8);  // [C, GH, GW]
  auto src = images.to(torch::kCPU);
  for (int64_t i = 0; i < N; ++i) {
    int64_t r = i / cols, c = i % cols;
    grid.narrow(1, pad + r * (H + pad), H).narrow(2, pad + c * (W + pad), W).copy_(src[i]);
  }
  return grid;
}

namespace {
void png_append(png_structp png, png_bytep data, png_size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}
void png_no_flush(png_structp) {}
}  // namespace

std::string encode_png(const torch::Tensor& image) {
  if (image.dim() != 3 || image.scalar_type() != torch::kUInt8 || (image.size(0) != 1 && image.size(0) != 3))
    throw std::invalid_argument("write_png: expected uint8 [C,H,W] with C = 1 or 3");
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  auto hwc = image.permute({1, 2, 0}).contiguous().to(torch::kCPU);  // [H, W, C]
  std::string bytes;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) throw std::runtime_error("write_png: libpng initialisation failed");
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("write_png: libpng error encoding the image");
  }
  png_set_write_fn(png, &bytes, png_append, png_no_flush);
  png_set_IHDR(png, info, png_uint_32(W), png_uint_32(H), 8, C == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const uint8_t* data = hwc.data_ptr<uint8_t>();
  for (int64_t y = 0; y < H; ++y) png_write_row(png, const_cast<png_bytep>(data + y * W * C));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return bytes;
}

void write_png(const std::string& path, const torch::Tensor& image) {
  write_file_atomic(path, encode_png(image), "samples");  // errors name the file and errno (ENOSPC, EACCES)
}

torch::Tensor read_png(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) throw std::runtime_error("read_png: cannot open '" + path + "'");
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) throw std::runtime_error("read_png: libpng initialisation failed");
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw std::runtime_error("read_png: libpng error reading '" + path + "'");
  }
  png_init_io(png, f.get());
  png_read_info(png, info);
  const int64_t W = png_get_image_width(png, info), H = png_get_image_height(png, info);
  const int type = png_get_color_type(png, info);
  if (png_get_bit_depth(png, info) != 8 || (type != PNG_COLOR_TYPE_GRAY && type != PNG_COLOR_TYPE_RGB)) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw std::runtime_error("read_png: '" + path + "' is not 8-bit grey or RGB");
  }
  const int64_t C = type == PNG_COLOR_TYPE_GRAY ? 1 : 3;
  auto hwc = torch::empty({H, W, C}, torch::kUInt8);  // [H, W, C]
  for (int64_t y = 0; y < H; ++y) png_read_row(png, hwc.data_ptr<uint8_t>() + y * W * C, nullptr);
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return hwc.permute({2, 0, 1}).contiguous();
}

void write_png_grid(const std::string& path, const torch::Tensor& images, int64_t cols, int64_t pad) {
  write_png(path, make_grid(images, cols, pad));
}

std::string tokens_to_text8(const torch::Tensor& tokens) {
  auto t = tokens.to(torch::kCPU, torch::kLong).reshape({tokens.size(0), -1});  // [N, L]
  std::string out;
  auto a = t.accessor<int64_t, 2>();
  for (int64_t i = 0; i < t.size(0); ++i) {
    for (int64_t j = 0; j < t.size(1); ++j) {
      int64_t v = a[i][j];
      out.push_back(v >= 0 && v < 26 ? char('a' + v) : v == 26 ? ' ' : '_');
    }
    out.push_back('\n');
  }
  return out;
}

void write_text(const std::string& path, const std::string& text) { write_file_atomic(path, text, "samples"); }

}  // namespace gsdiff
