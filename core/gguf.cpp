#include "core/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/gguf_dequant.h"

namespace rrt {

namespace {

// Every ggml type id the format defines (ggml.h / gguf-py constants.py: GGML_QUANT_SIZES).
// Ids 4, 5 (Q4_2, Q4_3) and 31-33, 36-38 (repacked layouts) were removed from ggml.
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},      {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 40},      {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},  {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},   {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},    {40, "NVFP4", 64, 36},
    {41, "Q1_0", 128, 18},
};

constexpr uint32_t kMaxDims = 4;                    // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;                   // nested arrays deeper than this are refused
constexpr int64_t kMaxElements = int64_t{1} << 48;  // keeps every size product below 2^63

// Bytes of a scalar value type; 0 for string and array (variable), -1 for unknown ids.
int64_t scalar_size(uint32_t t) {
  switch (static_cast<GgufType>(t)) {
    case GgufType::uint8:
    case GgufType::int8:
    case GgufType::boolean:
      return 1;
    case GgufType::uint16:
    case GgufType::int16:
      return 2;
    case GgufType::uint32:
    case GgufType::int32:
    case GgufType::float32:
      return 4;
    case GgufType::uint64:
    case GgufType::int64:
    case GgufType::float64:
      return 8;
    case GgufType::string:
    case GgufType::array:
      return 0;
  }
  return -1;
}

// The fewest bytes one element of type t can take in the file: bounds array counts.
int64_t min_encoded_size(GgufType t) {
  if (t == GgufType::string) return 8;  // length
  if (t == GgufType::array) return 12;  // element type + count
  return scalar_size(static_cast<uint32_t>(t));
}

bool is_integer(GgufType t) {
  switch (t) {
    case GgufType::uint8:
    case GgufType::int8:
    case GgufType::uint16:
    case GgufType::int16:
    case GgufType::uint32:
    case GgufType::int32:
    case GgufType::uint64:
    case GgufType::int64:
      return true;
    default:
      return false;
  }
}
bool is_signed(GgufType t) {
  return t == GgufType::int8 || t == GgufType::int16 || t == GgufType::int32 ||
         t == GgufType::int64;
}

// An integer of type t held in `bits` (zero-extended): sign-extended when t is signed.
struct Integer {
  bool negative;
  uint64_t magnitude_or_bits;  // the value when not negative; the two's complement bits otherwise
  int64_t as_signed;
};
Integer integer_of(GgufType t, uint64_t bits) {
  const int64_t size = scalar_size(static_cast<uint32_t>(t));
  if (!is_signed(t)) return {false, bits, static_cast<int64_t>(bits)};
  const int shift = static_cast<int>(64 - 8 * size);
  const int64_t v = static_cast<int64_t>(bits << shift) >> shift;
  return {v < 0, static_cast<uint64_t>(v), v};
}

uint64_t load_le(const uint8_t* p, int64_t size) {
  uint64_t v = 0;
  if (size < 1 || size > 8) return v;             // callers pass scalar sizes only
  std::memcpy(&v, p, static_cast<size_t>(size));  // little-endian hosts only, as everywhere
  return v;
}

// Reads from the mapped bytes with every length checked against what is left.
class Cursor {
 public:
  Cursor(const uint8_t* base, int64_t size, const std::string& where)
      : base_(base), size_(size), where_(where) {}
  int64_t pos() const { return pos_; }
  int64_t left() const { return size_ - pos_; }

  void need(int64_t n, const char* what, const std::string& context) {
    RRT_CHECK(n >= 0 && n <= left(), where_, "truncated: ", what, context.empty() ? "" : " of ",
              context, " needs ", n, " bytes at offset ", pos_, " but the file ends after ", left(),
              " more");
  }
  uint64_t scalar(int64_t size, const char* what, const std::string& context) {
    need(size, what, context);
    const uint64_t v = load_le(base_ + pos_, size);
    pos_ += size;
    return v;
  }
  uint32_t u32(const char* what, const std::string& context = "") {
    return static_cast<uint32_t>(scalar(4, what, context));
  }
  uint64_t u64(const char* what, const std::string& context = "") {
    return scalar(8, what, context);
  }
  std::string string(const char* what, const std::string& context = "") {
    const uint64_t len = u64(what, context);
    RRT_CHECK(len <= static_cast<uint64_t>(left()), where_, what, context.empty() ? "" : " of ",
              context, " claims ", len, " bytes but only ", left(),
              " remain in the file (corrupt or truncated)");
    std::string s(reinterpret_cast<const char*>(base_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<int64_t>(len);
    return s;
  }
  std::vector<uint8_t> bytes(int64_t n, const char* what, const std::string& context) {
    need(n, what, context);
    std::vector<uint8_t> out(base_ + pos_, base_ + pos_ + n);
    pos_ += n;
    return out;
  }

 private:
  const uint8_t* base_;
  int64_t size_;
  int64_t pos_ = 0;
  const std::string& where_;
};

GgufValue read_value(Cursor& c, uint32_t type_id, const std::string& key, int depth,
                     const std::string& where) {
  RRT_CHECK(scalar_size(type_id) >= 0, where, "key '", key, "' has unknown value type ", type_id,
            " (GGUF defines 0..12)");
  GgufValue v;
  v.type = static_cast<GgufType>(type_id);
  if (v.type == GgufType::string) {
    v.str = c.string("string value", "key '" + key + "'");
    return v;
  }
  if (v.type != GgufType::array) {
    v.bits = c.scalar(scalar_size(type_id), "value", "key '" + key + "'");
    return v;
  }
  RRT_CHECK(depth < kMaxArrayDepth, where, "key '", key, "' nests arrays more than ",
            kMaxArrayDepth, " deep; refusing a file this unusual");
  const uint32_t elem = c.u32("array element type", "key '" + key + "'");
  RRT_CHECK(scalar_size(elem) >= 0, where, "key '", key, "' is an array of unknown value type ",
            elem, " (GGUF defines 0..12)");
  v.elem_type = static_cast<GgufType>(elem);
  v.count = c.u64("array count", "key '" + key + "'");
  const int64_t min_size = min_encoded_size(v.elem_type);
  RRT_CHECK(v.count <= static_cast<uint64_t>(c.left() / min_size), where, "key '", key,
            "' claims an array of ", v.count, " ", gguf_type_name(v.elem_type), " elements (at ",
            "least ", min_size, " bytes each) but only ", c.left(),
            " bytes remain (corrupt "
            "or truncated file)");
  const auto n = static_cast<int64_t>(v.count);
  if (v.elem_type == GgufType::string) {
    v.strings.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      v.strings.push_back(c.string("string element", "key '" + key + "'"));
  } else if (v.elem_type == GgufType::array) {
    v.arrays.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v.arrays.push_back(read_value(c, elem, key, depth + 1, where));
  } else {
    v.raw = c.bytes(n * min_size, "array elements", "key '" + key + "'");
  }
  return v;
}

std::string fail_type(const std::string& key, const char* wanted, const GgufValue& v) {
  std::string found(gguf_type_name(v.type));
  if (v.type == GgufType::array) found += " of " + std::string(gguf_type_name(v.elem_type));
  return detail::concat("key '", key, "' is ", found, ", expected ", wanted);
}

// Element i of a numeric array, widened into `bits`.
uint64_t element_bits(const GgufValue& v, uint64_t i) {
  const int64_t size = scalar_size(static_cast<uint32_t>(v.elem_type));
  return load_le(v.raw.data() + static_cast<int64_t>(i) * size, size);
}

float float_of(GgufType t, uint64_t bits) {
  if (t == GgufType::float32) {
    float f;
    const auto b = static_cast<uint32_t>(bits);
    std::memcpy(&f, &b, 4);
    return f;
  }
  double d;
  std::memcpy(&d, &bits, 8);
  return static_cast<float>(d);
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::uint8:
      return "uint8";
    case GgufType::int8:
      return "int8";
    case GgufType::uint16:
      return "uint16";
    case GgufType::int16:
      return "int16";
    case GgufType::uint32:
      return "uint32";
    case GgufType::int32:
      return "int32";
    case GgufType::float32:
      return "float32";
    case GgufType::boolean:
      return "bool";
    case GgufType::string:
      return "string";
    case GgufType::array:
      return "array";
    case GgufType::uint64:
      return "uint64";
    case GgufType::int64:
      return "int64";
    case GgufType::float64:
      return "float64";
  }
  return "unknown";
}

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  for (const GgmlTypeInfo& t : kGgmlTypes)
    if (t.id == id) return &t;
  return nullptr;
}

GgufFile::GgufFile(const std::string& path) : path_(path) {
  const std::string where = "gguf " + path;
  const int fd = ::open(path.c_str(), O_RDONLY);
  RRT_CHECK(fd >= 0, where, "cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    RRT_FAIL(where, "cannot stat: ", std::strerror(err));
  }
  size_ = st.st_size;
  if (size_ < 24) {
    ::close(fd);
    RRT_FAIL(where, "file of ", size_, " bytes is too short to be GGUF (the header alone is 24)");
  }
  map_ = ::mmap(nullptr, static_cast<size_t>(size_), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  RRT_CHECK(map_ != MAP_FAILED, where, "mmap failed: ", std::strerror(errno));
  try {
    parse();
  } catch (...) {
    // A constructor that throws runs no destructor: release the mapping here.
    ::munmap(map_, static_cast<size_t>(size_));
    map_ = nullptr;
    throw;
  }
}

GgufFile::~GgufFile() {
  if (map_ && map_ != MAP_FAILED) ::munmap(map_, static_cast<size_t>(size_));
}

void GgufFile::parse() {
  const std::string where = "gguf " + path_;
  const auto* base = static_cast<const uint8_t*>(map_);
  Cursor c(base, size_, where);

  // ---- Header: magic, version, counts ----
  if (std::memcmp(base, "GGUF", 4) != 0) {
    char seen[32];
    std::snprintf(seen, sizeof seen, "%02x %02x %02x %02x", base[0], base[1], base[2], base[3]);
    RRT_FAIL(where, "not a GGUF file: magic bytes are ", seen, ", expected 47 47 55 46 (\"GGUF\")");
  }
  c.u32("magic");
  version_ = c.u32("version");
  RRT_CHECK(version_ != 1, where,
            "GGUF version 1 (2023, 32-bit counts) is not supported; "
            "re-convert the model with a current llama.cpp");
  RRT_CHECK((version_ & 0xffffu) != 0, where, "version field reads ", version_,
            ", which is a "
            "big-endian GGUF; only little-endian files are supported");
  RRT_CHECK(version_ == 2 || version_ == 3, where, "GGUF version ", version_,
            " is not supported (this reader knows versions 2 and 3)");
  const uint64_t tensor_count = c.u64("tensor count");
  const uint64_t kv_count = c.u64("metadata count");
  // Each entry takes at least this many bytes, so larger counts cannot be honest.
  RRT_CHECK(kv_count <= static_cast<uint64_t>(c.left() / 13), where, "header claims ", kv_count,
            " metadata entries but only ", c.left(), " bytes follow (corrupt header)");
  RRT_CHECK(tensor_count <= static_cast<uint64_t>(c.left() / 24), where, "header claims ",
            tensor_count, " tensors but only ", c.left(), " bytes follow (corrupt header)");

  // ---- Metadata ----
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = c.string("metadata key", "entry " + std::to_string(i));
    const uint32_t type = c.u32("value type", "key '" + key + "'");
    GgufValue v = read_value(c, type, key, 0, where);
    RRT_CHECK(metadata_.count(key) == 0, where, "metadata key '", key, "' appears twice");
    metadata_.emplace(std::move(key), std::move(v));
  }
  if (has("general.alignment")) {
    const uint32_t a = get_u32("general.alignment");
    RRT_CHECK(a != 0 && (a & (a - 1)) == 0, where, "general.alignment is ", a,
              "; it must be a power of two");
    alignment_ = a;
  }

  // ---- Tensor table ----
  tensors_.reserve(static_cast<size_t>(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo t;
    t.name = c.string("tensor name", "tensor " + std::to_string(i));
    const std::string context = "tensor '" + t.name + "'";
    const uint32_t n_dims = c.u32("dimension count", context);
    RRT_CHECK(n_dims >= 1 && n_dims <= kMaxDims, where, context, " has ", n_dims,
              " dimensions; GGUF tensors have 1 to ", kMaxDims);
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = c.u64("dimension", context);
      RRT_CHECK(dim <= static_cast<uint64_t>(kMaxElements) &&
                    (dim == 0 || numel <= kMaxElements / static_cast<int64_t>(dim)),
                where, context, " has an impossible shape (dimension ", d, " is ", dim, ")");
      t.dims.push_back(static_cast<int64_t>(dim));
      numel *= static_cast<int64_t>(dim);
    }
    t.type = c.u32("type", context);
    const GgmlTypeInfo* info = ggml_type_info(t.type);
    RRT_CHECK(info != nullptr, where, context, " has unknown tensor type id ", t.type,
              "; the file is corrupt or from a newer ggml than this reader knows");
    RRT_CHECK(t.dims[0] % info->block_size == 0, where, context, " of type ", info->name,
              " has rows of ", t.dims[0], " elements, not a multiple of its block of ",
              info->block_size);
    t.offset = c.u64("data offset", context);
    t.numel = numel;
    t.nbytes = numel / info->block_size * info->type_size;
    RRT_CHECK(index_.count(t.name) == 0, where, "tensor '", t.name, "' appears twice");
    index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // ---- Data section: aligned after the table; every tensor inside it, none overlapping ----
  data_start_ = (static_cast<uint64_t>(c.pos()) + alignment_ - 1) / alignment_ * alignment_;
  if (tensors_.empty()) return;
  RRT_CHECK(data_start_ <= static_cast<uint64_t>(size_), where,
            "the data section would start "
            "at byte ",
            data_start_, " but the file has only ", size_, " (truncated download?)");
  const uint64_t data_bytes = static_cast<uint64_t>(size_) - data_start_;
  for (const GgufTensorInfo& t : tensors_) {
    RRT_CHECK(t.offset % alignment_ == 0, where, "tensor '", t.name, "' starts at offset ",
              t.offset, ", not a multiple of the alignment ", alignment_);
    RRT_CHECK(t.offset <= data_bytes && static_cast<uint64_t>(t.nbytes) <= data_bytes - t.offset,
              where, "tensor '", t.name, "' (", t.nbytes, " bytes at data offset ", t.offset,
              ") reaches past the end of the file, whose data section holds ", data_bytes,
              " bytes (truncated download?)");
  }
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const GgufTensorInfo& prev = tensors_[order[i - 1]];
    const GgufTensorInfo& next = tensors_[order[i]];
    RRT_CHECK(next.offset >= prev.offset + static_cast<uint64_t>(prev.nbytes) || next.nbytes == 0,
              where, "tensors '", prev.name, "' and '", next.name, "' overlap in the data section");
  }
}

// ---- Metadata getters
// ----------------------------------------------------------------------------

const GgufValue& GgufFile::value(const std::string& key) const {
  auto it = metadata_.find(key);
  RRT_CHECK(it != metadata_.end(), "gguf " + path_, "no metadata key '", key, "'");
  return it->second;
}

uint32_t GgufFile::get_u32(const std::string& key) const {
  const GgufValue& v = value(key);
  RRT_CHECK(is_integer(v.type), "gguf " + path_, fail_type(key, "an integer (uint32)", v));
  const Integer n = integer_of(v.type, v.bits);
  RRT_CHECK(!n.negative && n.magnitude_or_bits <= std::numeric_limits<uint32_t>::max(),
            "gguf " + path_, "key '", key, "' is ", gguf_type_name(v.type), " ",
            n.negative ? std::to_string(n.as_signed) : std::to_string(n.magnitude_or_bits),
            ", which does not fit a uint32");
  return static_cast<uint32_t>(n.magnitude_or_bits);
}

int64_t GgufFile::get_i64(const std::string& key) const {
  const GgufValue& v = value(key);
  RRT_CHECK(is_integer(v.type), "gguf " + path_, fail_type(key, "an integer (int64)", v));
  const Integer n = integer_of(v.type, v.bits);
  RRT_CHECK(is_signed(v.type) || n.magnitude_or_bits <= uint64_t{INT64_MAX}, "gguf " + path_,
            "key '", key, "' is uint64 ", n.magnitude_or_bits, ", which does not fit an int64");
  return n.as_signed;
}

float GgufFile::get_f32(const std::string& key) const {
  const GgufValue& v = value(key);
  RRT_CHECK(v.type == GgufType::float32 || v.type == GgufType::float64, "gguf " + path_,
            fail_type(key, "float32", v));
  return float_of(v.type, v.bits);
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = value(key);
  RRT_CHECK(v.type == GgufType::boolean, "gguf " + path_, fail_type(key, "bool", v));
  return v.bits != 0;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = value(key);
  RRT_CHECK(v.type == GgufType::string, "gguf " + path_, fail_type(key, "string", v));
  return v.str;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = value(key);
  RRT_CHECK(v.type == GgufType::array && v.elem_type == GgufType::string, "gguf " + path_,
            fail_type(key, "array of string", v));
  return v.strings;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = value(key);
  RRT_CHECK(v.type == GgufType::array && is_integer(v.elem_type), "gguf " + path_,
            fail_type(key, "array of integers", v));
  std::vector<int64_t> out(static_cast<size_t>(v.count));
  for (uint64_t i = 0; i < v.count; ++i) {
    const Integer n = integer_of(v.elem_type, element_bits(v, i));
    RRT_CHECK(is_signed(v.elem_type) || n.magnitude_or_bits <= uint64_t{INT64_MAX}, "gguf " + path_,
              "key '", key, "' element ", i, " is uint64 ", n.magnitude_or_bits,
              ", which does not fit an int64");
    out[static_cast<size_t>(i)] = n.as_signed;
  }
  return out;
}

std::vector<float> GgufFile::get_f32_array(const std::string& key) const {
  const GgufValue& v = value(key);
  RRT_CHECK(v.type == GgufType::array &&
                (v.elem_type == GgufType::float32 || v.elem_type == GgufType::float64),
            "gguf " + path_, fail_type(key, "array of float32", v));
  std::vector<float> out(static_cast<size_t>(v.count));
  for (uint64_t i = 0; i < v.count; ++i)
    out[static_cast<size_t>(i)] = float_of(v.elem_type, element_bits(v, i));
  return out;
}

// ---- Tensors
// -------------------------------------------------------------------------------------

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  auto it = index_.find(name);
  RRT_CHECK(it != index_.end(), "gguf " + path_, "no tensor named '", name, "'");
  return tensors_[it->second];
}

const uint8_t* GgufFile::tensor_data(const GgufTensorInfo& t) const {
  return static_cast<const uint8_t*>(map_) + data_start_ + t.offset;
}

void GgufFile::read_f32_into(const std::string& name, float* out, int64_t count) const {
  const GgufTensorInfo& t = tensor(name);
  const std::string where = "gguf " + path_;
  RRT_CHECK(t.numel == count, where, "tensor '", name, "' has ", t.numel, " elements, expected ",
            count);
  dequantize(t.type, tensor_data(t), t.numel, out, where + ": tensor '" + name + "'");
}

std::vector<float> GgufFile::read_f32(const std::string& name) const {
  const GgufTensorInfo& t = tensor(name);
  RRT_CHECK(can_dequantize(t.type), "gguf " + path_, "tensor '", name, "' has type ", t.type_name(),
            ", which rrt cannot dequantise (supported: ", dequantizable_types(), ")");
  std::vector<float> out(static_cast<size_t>(t.numel));
  read_f32_into(name, out.data(), t.numel);
  return out;
}

int64_t gguf_scalar_bytes(GgufType t) {
  return std::max<int64_t>(scalar_size(static_cast<uint32_t>(t)), 0);
}

}  // namespace rrt
