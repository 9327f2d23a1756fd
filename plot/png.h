// A minimal PNG writer: 8-bit RGB, no interlacing, one IDAT chunk deflated by zlib. Enough for
// rrt's plots (plot/plot.h) without a plotting library, Python or network at run time.
//   Signature, IHDR (width, height, bit depth 8, colour type 2 = RGB), IDAT (each row prefixed
//   by filter byte 0, then zlib's deflate), IEND; every chunk carries its CRC-32.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rrt {

// rgb: height rows of width pixels, 3 bytes each (R, G, B), top row first.
std::vector<uint8_t> encode_png(int64_t width, int64_t height, const std::vector<uint8_t>& rgb);

// Writes encode_png(...) to path atomically (temporary file, fsync, rename).
void write_png(const std::string& path, int64_t width, int64_t height,
               const std::vector<uint8_t>& rgb);

}  // namespace rrt
