#include "core/gguf_writer.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "core/durable_file.h"
#include "core/error.h"

namespace rrt {

namespace {

constexpr uint64_t kAlignment = 32;

template <typename T>
void put(std::string& out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // little-endian hosts only, as the reader
  out.append(bytes, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

// A value's payload after its type id (the element type and count first for arrays).
void put_value(std::string& out, const GgufValue& v) {
  if (v.type == GgufType::string) return put_string(out, v.str);
  if (v.type != GgufType::array) {
    const int64_t n = gguf_scalar_bytes(v.type);
    char bytes[8];
    std::memcpy(bytes, &v.bits, 8);
    out.append(bytes, static_cast<size_t>(n));
    return;
  }
  put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
  put<uint64_t>(out, v.count);
  if (v.elem_type == GgufType::string) {
    for (const std::string& s : v.strings) put_string(out, s);
  } else if (v.elem_type == GgufType::array) {
    for (const GgufValue& a : v.arrays) put_value(out, a);
  } else {
    out.append(reinterpret_cast<const char*>(v.raw.data()), v.raw.size());
  }
}

uint64_t aligned(uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

void GgufWriter::key(const std::string& key, GgufType type) {
  keys_.push_back(key);
  put_string(metadata_, key);
  put<uint32_t>(metadata_, static_cast<uint32_t>(type));
  ++kv_count_;
}

void GgufWriter::add_u32(const std::string& k, uint32_t v) {
  key(k, GgufType::uint32);
  put(metadata_, v);
}

void GgufWriter::add_f32(const std::string& k, float v) {
  key(k, GgufType::float32);
  put(metadata_, v);
}

void GgufWriter::add_bool(const std::string& k, bool v) {
  key(k, GgufType::boolean);
  put<uint8_t>(metadata_, v ? 1 : 0);
}

void GgufWriter::add_string(const std::string& k, const std::string& v) {
  key(k, GgufType::string);
  put_string(metadata_, v);
}

void GgufWriter::add_strings(const std::string& k, const std::vector<std::string>& v) {
  key(k, GgufType::array);
  put<uint32_t>(metadata_, static_cast<uint32_t>(GgufType::string));
  put<uint64_t>(metadata_, v.size());
  for (const std::string& s : v) put_string(metadata_, s);
}

void GgufWriter::add_i32s(const std::string& k, const std::vector<int32_t>& v) {
  key(k, GgufType::array);
  put<uint32_t>(metadata_, static_cast<uint32_t>(GgufType::int32));
  put<uint64_t>(metadata_, v.size());
  for (int32_t x : v) put(metadata_, x);
}

void GgufWriter::add_value(const std::string& k, const GgufValue& v) {
  key(k, v.type);
  put_value(metadata_, v);
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape,
                            GgmlWriteType type, const void* data) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  tensors_.push_back({name, shape, type, data, n * (type == GgmlWriteType::f32 ? 4 : 2)});
}

void GgufWriter::write(const std::string& path) const {
  const std::string where = "gguf " + path;
  std::set<std::string> seen;
  for (const std::string& k : keys_)
    RRT_CHECK(seen.insert(k).second, where, "metadata key '", k, "' given twice");
  seen.clear();
  for (const Tensor& t : tensors_)
    RRT_CHECK(seen.insert(t.name).second, where, "tensor '", t.name, "' given twice");

  std::string head;
  put<uint32_t>(head, 0x46554747u);  // "GGUF"
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, static_cast<uint64_t>(kv_count_));
  head += metadata_;
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.shape.size()));
    for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) put<uint64_t>(head, *d);
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset = aligned(offset + static_cast<uint64_t>(t.bytes));
  }
  head.append(aligned(head.size()) - head.size(), '\0');

  // Each tensor padded with zeros to the alignment, as the offsets above assume.
  static constexpr char kZeros[kAlignment] = {};
  std::vector<FileBuffer> buffers{{head.data(), head.size()}};
  for (const Tensor& t : tensors_) {
    const auto bytes = static_cast<size_t>(t.bytes);
    buffers.push_back({t.data, bytes});
    buffers.push_back({kZeros, aligned(bytes) - bytes});
  }
  write_buffers_atomically(path, buffers, where);
}

}  // namespace rrt
