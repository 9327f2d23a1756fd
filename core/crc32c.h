// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord files and LevelDB use it.
// A 256-entry table, one byte at a time: rrt checksums log records of a few hundred bytes, so
// the hardware instruction would not be measurable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rrt {

// CRC-32C of `size` bytes, continuing from `crc` (0 to start). crc32c("123456789") = 0xE3069283.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
inline uint32_t crc32c(std::string_view bytes) { return crc32c(bytes.data(), bytes.size()); }

// TFRecord's "masked" CRC: rotate right by 15, add a constant. Stored CRCs are masked so that a
// CRC computed over data that itself holds CRCs does not degenerate.
inline uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u; }
inline uint32_t unmask_crc32c(uint32_t masked) {
  const uint32_t rot = masked - 0xA282EAD8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace rrt
