#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/durable_file.h"
#include "core/error.h"

namespace rrt {

namespace {
// Bytes per element of the dtypes rrt reads; 0 for others (listed, but never read).
int64_t dtype_bytes(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}
}  // namespace

int64_t SafetensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const std::string where = "safetensors " + path;
  int fd = ::open(path.c_str(), O_RDONLY);
  RRT_CHECK(fd >= 0, where, "cannot open: ", std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  size_ = st.st_size;
  if (size_ < 8) {
    ::close(fd);
    RRT_FAIL(where, "file of ", size_, " bytes is too short to be safetensors");
  }
  map_ = ::mmap(nullptr, static_cast<size_t>(size_), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  RRT_CHECK(map_ != MAP_FAILED, where, "mmap failed: ", std::strerror(errno));
  try {
    parse_header();
  } catch (...) {
    // A constructor that throws runs no destructor: release the mapping here.
    ::munmap(map_, static_cast<size_t>(size_));
    map_ = nullptr;
    throw;
  }
}

void SafetensorsFile::parse_header() {
  const std::string where = "safetensors " + path_;
  const auto* base = static_cast<const uint8_t*>(map_);
  uint64_t header_len = 0;
  std::memcpy(&header_len, base, 8);  // little-endian on every platform we target
  RRT_CHECK(header_len <= static_cast<uint64_t>(size_) - 8, where, "header length ", header_len,
            " exceeds the file size; is this a safetensors file?");
  data_start_ = 8 + static_cast<int64_t>(header_len);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(base + 8, base + 8 + header_len);
  } catch (const std::exception& e) {
    RRT_FAIL(where, "header is not valid JSON: ", e.what());
  }
  // Every field is checked here, so that reads later never leave the file: a header that lies
  // about shapes or offsets is rejected with the tensor's name.
  try {
    RRT_CHECK(header.is_object(), where, "header is not a JSON object");
    for (auto& [name, value] : header.items()) {
      if (name == "__metadata__") {
        RRT_CHECK(value.is_object(), where, "__metadata__ is not an object");
        for (auto& [k, v] : value.items())
          if (v.is_string()) metadata_[k] = v.get<std::string>();
        continue;
      }
      SafetensorInfo t;
      t.dtype = value.at("dtype").get<std::string>();
      t.shape = value.at("shape").get<std::vector<int64_t>>();
      auto offsets = value.at("data_offsets").get<std::vector<int64_t>>();
      RRT_CHECK(offsets.size() == 2, where, "tensor '", name, "' has malformed data_offsets");
      t.begin = offsets[0];
      t.end = offsets[1];
      const int64_t data_bytes = size_ - data_start_;
      RRT_CHECK(t.begin >= 0 && t.begin <= t.end && t.end <= data_bytes, where, "tensor '", name,
                "' points outside the file (truncated download?)");
      int64_t numel = 1;
      for (int64_t d : t.shape) {
        // Bounded by 2^40 per factor product so that numel * element size cannot overflow.
        RRT_CHECK(d >= 0 && (d == 0 || numel <= (int64_t{1} << 40) / d), where, "tensor '", name,
                  "' has an impossible shape");
        numel *= d;
      }
      const int64_t elem = dtype_bytes(t.dtype);
      RRT_CHECK(elem == 0 || numel * elem == t.end - t.begin, where, "tensor '", name, "' claims ",
                numel, " elements of ", t.dtype, " but its byte range holds ", t.end - t.begin);
      tensors_[name] = t;
    }
  } catch (const nlohmann::json::exception& e) {
    RRT_FAIL(where, "malformed header: ", e.what());
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ && map_ != MAP_FAILED) ::munmap(map_, static_cast<size_t>(size_));
}

const SafetensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  RRT_CHECK(it != tensors_.end(), "safetensors " + path_, "no tensor named '", name, "'");
  return it->second;
}

const uint8_t* SafetensorsFile::bytes_of(const SafetensorInfo& t) const {
  return static_cast<const uint8_t*>(map_) + data_start_ + t.begin;
}

namespace {
float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
}  // namespace

void SafetensorsFile::read_f32_into(const std::string& name, float* out, int64_t count) const {
  const SafetensorInfo& t = info(name);
  const std::string where = "safetensors " + path_;
  RRT_CHECK(t.numel() == count, where, "tensor '", name, "' has ", t.numel(),
            " elements, expected ", count);
  const uint8_t* p = bytes_of(t);
  if (t.dtype == "F32") {
    std::memcpy(out, p, static_cast<size_t>(count) * 4);
  } else if (t.dtype == "BF16") {
    for (int64_t i = 0; i < count; ++i) {
      bf16 b;
      std::memcpy(&b.bits, p + 2 * i, 2);
      out[i] = b.to_float();
    }
  } else if (t.dtype == "F16") {
    for (int64_t i = 0; i < count; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = half_to_float(h);
    }
  } else if (t.dtype == "F64") {
    for (int64_t i = 0; i < count; ++i) {
      double d;
      std::memcpy(&d, p + 8 * i, 8);
      out[i] = static_cast<float>(d);
    }
  } else {
    RRT_FAIL(where, "tensor '", name, "' has dtype ", t.dtype, ", which cannot be read as floats");
  }
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name) const {
  std::vector<float> out(static_cast<size_t>(info(name).numel()));
  read_f32_into(name, out.data(), static_cast<int64_t>(out.size()));
  return out;
}

std::vector<int32_t> SafetensorsFile::read_i32(const std::string& name) const {
  const SafetensorInfo& t = info(name);
  RRT_CHECK(t.dtype == "I32", "safetensors " + path_, "tensor '", name, "' has dtype ", t.dtype,
            ", expected I32");
  std::vector<int32_t> out(static_cast<size_t>(t.numel()));
  std::memcpy(out.data(), bytes_of(t), out.size() * 4);
  return out;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string where = "safetensors " + path;
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  int64_t offset = 0;
  std::vector<int64_t> sizes;
  for (const auto& t : tensors) {
    RRT_CHECK(t.dtype == "F32" || t.dtype == "I32" || t.dtype == "BF16", where,
              "cannot write dtype ", t.dtype);
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    const int64_t bytes = n * dtype_bytes(t.dtype);
    sizes.push_back(bytes);
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  const uint64_t len = text.size();
  std::vector<FileBuffer> buffers{{&len, sizeof(len)}, {text.data(), text.size()}};
  for (size_t i = 0; i < tensors.size(); ++i)
    buffers.push_back({tensors[i].data, static_cast<size_t>(sizes[i])});
  write_buffers_atomically(path, buffers, where);
}

}  // namespace rrt
