// The fuzz target for the safetensors reader, shared by the libFuzzer build
// (tools/fuzz_safetensors.sh) and the corpus replay test run by ctest.
// Any input must end in success or an rrt::Error: never a crash, a hang or another exception.
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/safetensors.h"
#include "tests/fuzz/fuzz_input.h"

namespace rrt::fuzz {

inline void run_safetensors_input(const uint8_t* data, size_t size) {
  with_input_file(data, size, [](const char* path) {
    SafetensorsFile file(path);
    for (const auto& [name, info] : file.tensors()) {
      try {
        if (info.dtype == "I32")
          (void)file.read_i32(name);
        else
          (void)file.read_f32(name);
      } catch (const Error&) {
      }
    }
  });
}

}  // namespace rrt::fuzz
