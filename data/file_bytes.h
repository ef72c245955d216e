// Reading whole data files into memory, gzip-compressed or plain (torch-free; fuzzable).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gsdiff::data {

// Reads every byte of `path`. Files starting with the gzip magic (1f 8b) are decompressed
// with zlib; others are read as they are. Throws std::runtime_error naming the file when it
// is missing, is a directory, cannot be read, or is a truncated / corrupt gzip stream.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// True when a regular file exists at `path`.
bool file_exists(const std::string& path);

}  // namespace gsdiff::data
