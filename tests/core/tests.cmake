# Core tests: arena, errors, counter RNG, bf16, safetensors reader, PNG writer and plots.
rrt_add_test(core_test ${CMAKE_CURRENT_LIST_DIR}/test_core.cpp)
rrt_add_test(test_gguf ${CMAKE_CURRENT_LIST_DIR}/test_gguf.cpp)
rrt_add_test(test_png ${CMAKE_CURRENT_LIST_DIR}/test_png.cpp)
# core/trace (profile spans, Chrome trace JSON) and core/crc32c (TFRecord checksums).
rrt_add_test(test_trace ${CMAKE_CURRENT_LIST_DIR}/test_trace.cpp)
