// Dequantisation of ggml tensor types to fp32, bit for bit what gguf-py (llama.cpp's Python
// package) computes: F32, F16, BF16 and the 32-element block formats Q4_0, Q4_1 and Q8_0.
// Block layouts (little-endian, fp16 scales):
//   Q4_0: d, 16 bytes of nibbles           x[i] = (q[i] - 8) * d
//   Q4_1: d, m, 16 bytes of nibbles        x[i] = q[i] * d + m
//   Q8_0: d, 32 int8                       x[i] = q[i] * d
// In the nibble formats byte j holds element j in its low nibble and element j + 16 in its high.
#pragma once

#include <cstdint>
#include <string>

namespace rrt {

// IEEE binary16 -> fp32, exact (subnormals, infinities and NaN payloads included).
float fp16_to_f32(uint16_t h);

bool can_dequantize(uint32_t ggml_type);
std::string dequantizable_types();  // "F32, F16, BF16, Q4_0, Q4_1, Q8_0"

// Converts `numel` elements of type `ggml_type` at `src` (numel / block size blocks) into `out`.
// `where` names the tensor in errors (an unsupported type, a count that is not whole blocks).
void dequantize(uint32_t ggml_type, const uint8_t* src, int64_t numel, float* out,
                const std::string& where);

}  // namespace rrt
