// Reader for the safetensors format (8-byte header length, JSON header, raw little-endian data).
// The file is memory-mapped; tensors are read by name and converted to fp32 on request.
// Used for test fixtures now and for HF checkpoints later.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rrt {

struct SafetensorInfo {
  std::string dtype;  // "F32", "F16", "BF16", "I32", "F64", ...
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;  // byte range inside the data section
  int64_t numel() const;
};

// One tensor to write: F32, I32 or BF16 (uint16 bit patterns) data owned by the caller.
struct SafetensorOut {
  std::string name;
  std::string dtype;  // "F32", "I32" or "BF16"
  std::vector<int64_t> shape;
  const void* data;
};

// Writes a safetensors file atomically: to a temporary beside `path` (core/durable_file.h),
// flushed, then renamed over `path`.
void write_safetensors(const std::string& path, const std::vector<SafetensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const SafetensorInfo& info(const std::string& name) const;
  const std::map<std::string, SafetensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Converts F32/F16/BF16/F64 to fp32 (and I32 when asked for ints).
  std::vector<float> read_f32(const std::string& name) const;
  std::vector<int32_t> read_i32(const std::string& name) const;
  // Reads into caller memory; the element count must match.
  void read_f32_into(const std::string& name, float* out, int64_t count) const;

 private:
  void parse_header();
  const uint8_t* bytes_of(const SafetensorInfo& t) const;
  std::string path_;
  void* map_ = nullptr;
  int64_t size_ = 0;
  int64_t data_start_ = 0;
  std::map<std::string, SafetensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace rrt
