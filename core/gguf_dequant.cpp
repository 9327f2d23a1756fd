#include "core/gguf_dequant.h"

#include <cstring>

#include "core/error.h"
#include "core/gguf.h"

// Q4_1 computes q * d + m with two roundings, as numpy does: this file is built with
// -ffp-contract=off (CMakeLists.txt) so that the compiler cannot fuse them into one FMA.

namespace rrt {

namespace {

enum : uint32_t { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 8, kBF16 = 30 };
constexpr int64_t kBlock = 32;  // elements per block of Q4_0, Q4_1, Q8_0

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

void dequant_q4_0(const uint8_t* src, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, src += 18, out += kBlock) {
    const float d = fp16_to_f32(load_u16(src));
    const uint8_t* qs = src + 2;
    for (int j = 0; j < kBlock / 2; ++j) {
      out[j] = d * static_cast<float>((qs[j] & 0x0f) - 8);
      out[j + kBlock / 2] = d * static_cast<float>((qs[j] >> 4) - 8);
    }
  }
}

void dequant_q4_1(const uint8_t* src, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, src += 20, out += kBlock) {
    const float d = fp16_to_f32(load_u16(src));
    const float m = fp16_to_f32(load_u16(src + 2));
    const uint8_t* qs = src + 4;
    for (int j = 0; j < kBlock / 2; ++j) {
      out[j] = d * static_cast<float>(qs[j] & 0x0f) + m;
      out[j + kBlock / 2] = d * static_cast<float>(qs[j] >> 4) + m;
    }
  }
}

void dequant_q8_0(const uint8_t* src, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, src += 34, out += kBlock) {
    const float d = fp16_to_f32(load_u16(src));
    const auto* qs = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < kBlock; ++j) out[j] = static_cast<float>(qs[j]) * d;
  }
}

}  // namespace

float fp16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | mant << 13;  // infinity, or NaN with its payload
  } else if (exp != 0) {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  } else if (mant == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal: shift the leading one into the implicit bit, lowering the exponent each step.
    uint32_t e = 127 - 15 + 1;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | e << 23 | (mant & 0x3ffu) << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

bool can_dequantize(uint32_t t) {
  return t == kF32 || t == kF16 || t == kBF16 || t == kQ4_0 || t == kQ4_1 || t == kQ8_0;
}

std::string dequantizable_types() { return "F32, F16, BF16, Q4_0, Q4_1, Q8_0"; }

void dequantize(uint32_t type, const uint8_t* src, int64_t numel, float* out,
                const std::string& where) {
  const GgmlTypeInfo* info = ggml_type_info(type);
  RRT_CHECK(info != nullptr, where, "unknown ggml type id ", type);
  RRT_CHECK(can_dequantize(type), where, "type ", info->name, " cannot be dequantised by rrt ",
            "(supported: ", dequantizable_types(), ")");
  RRT_CHECK(numel >= 0 && numel % info->block_size == 0, where, numel, " elements of ", info->name,
            " are not whole blocks of ", info->block_size);
  if (numel == 0) return;  // `out` may be null then (an empty vector's data())
  const int64_t blocks = numel / info->block_size;
  switch (type) {
    case kF32:
      std::memcpy(out, src, static_cast<size_t>(numel) * 4);
      break;
    case kF16:
      for (int64_t i = 0; i < numel; ++i) out[i] = fp16_to_f32(load_u16(src + 2 * i));
      break;
    case kBF16:
      for (int64_t i = 0; i < numel; ++i) {
        const uint32_t bits = static_cast<uint32_t>(load_u16(src + 2 * i)) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      break;
    case kQ4_0:
      dequant_q4_0(src, blocks, out);
      break;
    case kQ4_1:
      dequant_q4_1(src, blocks, out);
      break;
    case kQ8_0:
      dequant_q8_0(src, blocks, out);
      break;
  }
}

}  // namespace rrt
