// The fuzz target for the GGUF reader and dequantisation (core/gguf.h, core/gguf_dequant.h),
// shared by the libFuzzer build (tools/fuzz_gguf.sh) and the corpus replay test run by ctest.
// Any input must end in success or an rrt::Error: never a crash, a hang or another exception.
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/gguf.h"
#include "tests/fuzz/fuzz_input.h"

namespace rrt::fuzz {

inline void run_gguf_input(const uint8_t* data, size_t size) {
  with_input_file(data, size, [](const char* path) {
    GgufFile file(path);
    // Every getter on every key: the wrong ones must refuse cleanly.
    for (const auto& entry : file.metadata()) {
      const std::string& key = entry.first;  // clang 14 cannot capture structured bindings
      auto attempt = [](auto&& get) {
        try {
          (void)get();
        } catch (const Error&) {
        }
      };
      attempt([&] { return file.get_u32(key); });
      attempt([&] { return file.get_i64(key); });
      attempt([&] { return file.get_f32(key); });
      attempt([&] { return file.get_bool(key); });
      attempt([&] { return file.get_string(key); });
      attempt([&] { return file.get_string_array(key); });
      attempt([&] { return file.get_int_array(key); });
      attempt([&] { return file.get_f32_array(key); });
    }
    for (const GgufTensorInfo& t : file.tensors()) {
      try {
        (void)file.read_f32(t.name);
      } catch (const Error&) {
      }
    }
  });
}

}  // namespace rrt::fuzz
