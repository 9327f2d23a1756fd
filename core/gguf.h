// Reader for GGUF (versions 2 and 3), the file format of llama.cpp and ggml: a header, typed
// key-value metadata, a tensor table and an aligned data section. The file is memory-mapped and
// every count, length and offset is checked against its size before anything is allocated or
// read, so a truncated or corrupt file ends in an rrt::Error naming the file and the problem.
// Tensors are dequantised to fp32 on request (core/gguf_dequant.h).
//
// GGUF lists tensor dims innermost first: ne[0] is the row length, so an HF weight [out, in]
// appears as dims [in, out] with the same bytes in the same order.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace rrt {

// Metadata value types, with their ids in the file.
enum class GgufType : uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};
std::string_view gguf_type_name(GgufType t);  // "uint32", "array", ...
// Bytes of a scalar value of type t; 0 for string and array (their size varies).
int64_t gguf_scalar_bytes(GgufType t);

struct GgufValue {
  GgufType type = GgufType::uint32;
  uint64_t bits = 0;  // scalars: the value's little-endian bytes, zero-extended
  std::string str{};  // string
  // Arrays: element type and count; the elements live in exactly one of the three below.
  GgufType elem_type = GgufType::uint8;
  uint64_t count = 0;
  std::vector<uint8_t> raw{};          // numbers and bools: the elements' bytes as stored
  std::vector<std::string> strings{};  // strings
  std::vector<GgufValue> arrays{};     // nested arrays
};

// ggml tensor types; every id the format defines is known (for sizes), but only some can be
// dequantised (gguf_dequant.h).
struct GgmlTypeInfo {
  uint32_t id;
  const char* name;    // "F32", "Q4_1", ...
  int64_t block_size;  // elements per block
  int64_t type_size;   // bytes per block
};
// nullptr for an id that no ggml type has.
const GgmlTypeInfo* ggml_type_info(uint32_t id);

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // innermost first: dims[0] is the row length (ne[0])
  uint32_t type = 0;          // ggml type id (ggml_type_info(type) is never null here)
  uint64_t offset = 0;        // inside the data section
  int64_t numel = 0;
  int64_t nbytes = 0;
  // Outermost first, as PyTorch and rrt write shapes: [out, in] for a weight.
  std::vector<int64_t> shape() const { return {dims.rbegin(), dims.rend()}; }
  const char* type_name() const { return ggml_type_info(type)->name; }
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_start() const { return data_start_; }

  // ---- Metadata ----
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  bool has(const std::string& key) const { return metadata_.count(key) != 0; }
  const GgufValue& value(const std::string& key) const;  // throws naming the key when absent
  // Typed getters: any integer type whose value fits is accepted (writers differ on uint32 vs
  // int32); anything else throws naming the key, the type asked for and the type found.
  uint32_t get_u32(const std::string& key) const;
  int64_t get_i64(const std::string& key) const;
  float get_f32(const std::string& key) const;  // float32, or float64 narrowed
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;  // any integer elements
  std::vector<float> get_f32_array(const std::string& key) const;    // float32/float64 elements

  // ---- Tensors ----
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // in file order
  bool has_tensor(const std::string& name) const { return index_.count(name) != 0; }
  const GgufTensorInfo& tensor(const std::string& name) const;
  // The tensor's bytes inside the mapping (valid while this file lives).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const;
  // Dequantised to fp32; throws for types gguf_dequant.h cannot convert (naming the type).
  std::vector<float> read_f32(const std::string& name) const;
  void read_f32_into(const std::string& name, float* out, int64_t count) const;

 private:
  void parse();
  std::string path_;
  void* map_ = nullptr;
  int64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_start_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

}  // namespace rrt
