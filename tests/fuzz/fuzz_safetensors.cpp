// libFuzzer entry point; built by tools/fuzz_safetensors.sh (clang, -fsanitize=fuzzer,address).
#include "tests/fuzz/safetensors_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rrt::fuzz::run_safetensors_input(data, size);
  return 0;
}
