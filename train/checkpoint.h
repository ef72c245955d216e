// Checkpoint files: a checked envelope (magic, version, length, CRC32) around a torch archive, written atomically.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace gsdiff {

// Thrown when a checkpoint cannot be read; the message names the file and what failed.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Layout: "GSDIFFCK" | u32 version | u64 payload length | u32 CRC32(payload) | payload (little endian).
constexpr uint32_t kCheckpointVersion = 1;

// Writes payload atomically: tmp file in the same directory, write, fflush, fsync, rename, fsync dir.
void write_checkpoint_file(const std::string& path, const std::string& payload);
// Reads and verifies the envelope; the payload is returned only if length and CRC match.
std::string read_checkpoint_file(const std::string& path);

// Archive <-> bytes (torch::serialize).
std::string archive_to_bytes(torch::serialize::OutputArchive& archive);
void bytes_to_archive(const std::string& bytes, torch::serialize::InputArchive& archive);

// Checkpoint file names in `dir`: ckpt-<step, 8 digits>.gsdiff; newest (highest step) first.
std::string checkpoint_name(int64_t step);
std::vector<std::string> list_checkpoints(const std::string& dir);
// Keeps the `keep` newest valid checkpoints of dir by step, the file just `written` (if given) always among them,
// and removes the rest: older ones and every corrupt one (named on stderr). Returns the removed paths.
std::vector<std::string> prune_checkpoints(const std::string& dir, int64_t keep, const std::string& written = {});
// The step in a checkpoint's file name (ckpt-<step>.gsdiff), -1 for another name.
int64_t checkpoint_step(const std::string& path);
// Removes the temporary files (.ckpt-*.gsdiff.tmp) that a write killed before its rename left in dir; returns them.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);
// The newest checkpoint in dir whose envelope verifies (warns on stderr about each corrupt one);
// empty when there is none.
std::string newest_valid_checkpoint(const std::string& dir);

}  // namespace gsdiff
