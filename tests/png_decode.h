// A PNG reader for tests, independent of plot/png: walks the chunks (checking each CRC),
// reads IHDR, inflates the IDAT data with zlib and undoes all five row filters, so a test
// checks the file a PNG viewer would see rather than our writer against itself.
// Supports what rrt writes and a little more: 8-bit RGB or RGBA, no interlacing.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace rrt::testing {

struct DecodedPng {
  uint32_t width = 0, height = 0;
  uint8_t bit_depth = 0, color_type = 0, interlace = 0;
  std::vector<uint8_t> rgb;                       // height x width x 3
  std::vector<std::string> chunks;                // chunk types in file order
  uint32_t pixel(uint32_t x, uint32_t y) const {  // 0xRRGGBB
    const size_t i = (static_cast<size_t>(y) * width + x) * 3;
    return (uint32_t{rgb[i]} << 16) | (uint32_t{rgb[i + 1]} << 8) | rgb[i + 2];
  }
};

inline DecodedPng decode_png(const std::vector<uint8_t>& bytes) {
  auto fail = [](const std::string& what) { throw std::runtime_error("png: " + what); };
  static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || !std::equal(signature, signature + 8, bytes.begin()))
    fail("bad signature");
  auto u32 = [&](size_t at) {
    if (at + 4 > bytes.size()) fail("truncated");
    return (uint32_t{bytes[at]} << 24) | (uint32_t{bytes[at + 1]} << 16) |
           (uint32_t{bytes[at + 2]} << 8) | bytes[at + 3];
  };
  DecodedPng png;
  std::vector<uint8_t> idat;
  size_t at = 8;
  bool ended = false;
  while (at < bytes.size() && !ended) {
    const uint32_t length = u32(at);
    if (at + 12 + length > bytes.size()) fail("chunk past the end of the file");
    const std::string type(bytes.begin() + at + 4, bytes.begin() + at + 8);
    const uint8_t* data = bytes.data() + at + 8;
    const uLong crc = crc32(crc32(0L, Z_NULL, 0), bytes.data() + at + 4, length + 4);
    if (crc != u32(at + 8 + length)) fail("bad CRC in chunk " + type);
    png.chunks.push_back(type);
    if (type == "IHDR") {
      if (length != 13) fail("IHDR of length " + std::to_string(length));
      png.width = u32(at + 8);
      png.height = u32(at + 12);
      png.bit_depth = data[8];
      png.color_type = data[9];
      png.interlace = data[12];
    } else if (type == "IDAT") {
      idat.insert(idat.end(), data, data + length);
    } else if (type == "IEND") {
      ended = true;
    }
    at += 12 + length;
  }
  if (png.chunks.empty() || png.chunks.front() != "IHDR") fail("IHDR is not the first chunk");
  if (!ended) fail("no IEND");
  if (png.bit_depth != 8 || (png.color_type != 2 && png.color_type != 6) || png.interlace != 0)
    fail("unsupported format");
  const size_t channels = png.color_type == 2 ? 3 : 4;
  const size_t stride = png.width * channels;
  std::vector<uint8_t> raw((stride + 1) * png.height);
  uLongf raw_size = raw.size();
  if (uncompress(raw.data(), &raw_size, idat.data(), idat.size()) != Z_OK || raw_size != raw.size())
    fail("IDAT does not inflate to height x (1 + width x channels) bytes");
  std::vector<uint8_t> prev(stride, 0), cur(stride);
  png.rgb.resize(static_cast<size_t>(png.width) * png.height * 3);
  for (uint32_t y = 0; y < png.height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = raw.data() + y * (stride + 1) + 1;
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= channels ? cur[i - channels] : 0, b = prev[i],
                c = i >= channels ? prev[i - channels] : 0;
      int predictor = 0;
      switch (filter) {
        case 0:
          predictor = 0;
          break;
        case 1:
          predictor = a;
          break;
        case 2:
          predictor = b;
          break;
        case 3:
          predictor = (a + b) / 2;
          break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          fail("unknown filter " + std::to_string(filter));
      }
      cur[i] = static_cast<uint8_t>(in[i] + predictor);
    }
    for (uint32_t x = 0; x < png.width; ++x)
      for (int k = 0; k < 3; ++k)
        png.rgb[(static_cast<size_t>(y) * png.width + x) * 3 + k] = cur[x * channels + k];
    prev.swap(cur);
  }
  return png;
}

inline DecodedPng read_png(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("png: cannot open " + path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  return decode_png(bytes);
}

}  // namespace rrt::testing
