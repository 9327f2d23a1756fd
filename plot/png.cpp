#include "plot/png.h"

#include <zlib.h>

#include <cstdio>
#include <fstream>

#include "core/durable_file.h"
#include "core/error.h"

namespace rrt {

namespace {

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

// length, type, data, CRC-32 of type + data
void put_chunk(std::vector<uint8_t>& out, const char type[4], const std::vector<uint8_t>& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const size_t type_at = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, out.data() + type_at, static_cast<uInt>(4 + data.size()));
  put_u32(out, static_cast<uint32_t>(crc));
}

}  // namespace

std::vector<uint8_t> encode_png(int64_t width, int64_t height, const std::vector<uint8_t>& rgb) {
  RRT_CHECK(width > 0 && height > 0 && width < (1 << 24) && height < (1 << 24), "png",
            "image size ", width, " x ", height, " is out of range");
  const size_t row = static_cast<size_t>(width) * 3;
  RRT_CHECK(rgb.size() == row * static_cast<size_t>(height), "png", "expected ",
            row * static_cast<size_t>(height), " bytes of RGB for ", width, " x ", height, ", got ",
            rgb.size());
  std::vector<uint8_t> raw;  // each row: filter type 0 (None), then its pixels
  raw.reserve((row + 1) * static_cast<size_t>(height));
  for (int64_t y = 0; y < height; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), rgb.begin() + static_cast<ptrdiff_t>(y * row),
               rgb.begin() + static_cast<ptrdiff_t>((y + 1) * row));
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::vector<uint8_t> packed(packed_size);
  const int z = compress2(packed.data(), &packed_size, raw.data(), static_cast<uLong>(raw.size()),
                          Z_BEST_COMPRESSION);
  RRT_CHECK(z == Z_OK, "png", "zlib compress2 failed with code ", z);
  packed.resize(packed_size);

  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put_u32(ihdr, static_cast<uint32_t>(width));
  put_u32(ihdr, static_cast<uint32_t>(height));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // bit depth 8, RGB, deflate, filter 0, no interlace
  put_chunk(out, "IHDR", ihdr);
  put_chunk(out, "IDAT", packed);
  put_chunk(out, "IEND", {});
  return out;
}

void write_png(const std::string& path, int64_t width, int64_t height,
               const std::vector<uint8_t>& rgb) {
  const std::vector<uint8_t> bytes = encode_png(width, height, rgb);
  const std::string tmp = temporary_path(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    RRT_CHECK(out.good(), path, "cannot write the image (is the folder there and writable?)");
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.close();
    RRT_CHECK(out.good(), path, "writing the image failed (disk full?)");
  }
  commit_temporary_file(tmp, path, path);
}

}  // namespace rrt
