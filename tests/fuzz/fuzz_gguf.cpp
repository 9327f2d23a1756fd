// libFuzzer entry point; built by tools/fuzz_gguf.sh (clang, -fsanitize=fuzzer,address).
#include "tests/fuzz/gguf_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rrt::fuzz::run_gguf_input(data, size);
  return 0;
}
