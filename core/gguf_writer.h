// Writer for GGUF version 3 (llama.cpp's format; the reader is core/gguf.h): typed metadata in
// the order added, then the tensor table and the data section, every tensor aligned to 32
// bytes (general.alignment's default, so the key is not written). The file is written to a
// temporary and renamed (core/durable_file.h): readers see no file or the whole one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/gguf.h"

namespace rrt {

// ggml tensor types the writer takes: float32 or bfloat16 (uint16 bit patterns) data.
enum class GgmlWriteType : uint32_t { f32 = 0, bf16 = 30 };

class GgufWriter {
 public:
  void add_u32(const std::string& key, uint32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_strings(const std::string& key, const std::vector<std::string>& v);
  void add_i32s(const std::string& key, const std::vector<int32_t>& v);
  // A value as another file held it (GgufFile::value): copies keys such as tokenizer.*.
  void add_value(const std::string& key, const GgufValue& v);

  // shape outermost first, as rrt writes shapes ([out, in]; the file stores it innermost
  // first). `data` must stay valid until write().
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlWriteType type,
                  const void* data);

  // Errors name `path`; a key or tensor name given twice is refused.
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    GgmlWriteType type;
    const void* data;
    int64_t bytes;
  };
  void key(const std::string& key, GgufType type);
  std::string metadata_;  // the encoded key-value pairs
  int64_t kv_count_ = 0;
  std::vector<std::string> keys_;
  std::vector<Tensor> tensors_;
};

}  // namespace rrt
