// Verified checkpoints (docs/runs.md, "Verified checkpoints"): the checksum every dataset of a
// checkpoint carries, the error a failed verification raises, and the choice of the checkpoint a
// resume starts from when the newest one is corrupt (checkpoint.on_corrupt).
//
// The checksum is zlib's CRC-32 (the gzip / PNG polynomial) of the values as little-endian
// bytes: fp32 for parameters and moments, the UTF-8 text for /config. zlib is already linked for
// the PNG writer, and the same number comes out of Python's zlib.crc32(a.astype("<f4").tobytes()),
// so a file can be checked without rrt. It covers values, not storage: a copy that h5py or
// h5repack re-chunks, compresses or stores as float64 still verifies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace rrt {

class AdamW;
class ParameterSet;
struct CheckpointContents;

// A checkpoint whose bytes are damaged: a failed checksum, a truncated or unreadable file.
// where() is "checkpoint <path>"; dataset() names the damaged dataset ("" for the whole file).
class CheckpointCorrupt : public Error {
 public:
  CheckpointCorrupt(const std::string& where, const std::string& dataset, const std::string& what)
      : Error(where, what), dataset_(dataset) {}
  const std::string& dataset() const { return dataset_; }

 private:
  std::string dataset_;
};

// CRC-32 of n bytes, continuing from `crc` (0 to start); any length (zlib's crc32_z).
uint32_t checksum_bytes(const void* data, size_t n, uint32_t crc = 0);

// Reads every dataset of the checkpoint and checks its checksum (and the state's); throws
// CheckpointCorrupt naming the first damaged dataset. Needs no model: resume uses it to find the
// newest intact checkpoint. A file written before checksums existed passes when it is readable.
void verify_checkpoint(const std::string& path);

// Loads the newest checkpoint of `checkpoints` (oldest first, as list_checkpoints gives them)
// into params and optimizer. check_config(header, path) runs on each candidate's stored
// config before its weights are read (the resume consistency check; it throws to refuse). When
// the newest is corrupt, the newest intact one is found; checkpoint.on_corrupt "fallback" renames
// the corrupt files to <name>.corrupt and loads it, "refuse" throws an error naming the corrupt
// file and dataset and the intact one. Returns the index into `checkpoints` that was loaded.
size_t load_newest_intact(
    const std::vector<std::string>& checkpoints, const std::string& policy, ParameterSet& params,
    AdamW* optimizer, CheckpointContents& out,
    const std::function<void(const CheckpointContents&, const std::string&)>& check_config);

}  // namespace rrt
