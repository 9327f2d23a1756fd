# Core tests: arena, errors, counter RNG, bf16, safetensors reader.
rrt_add_test(core_test ${CMAKE_CURRENT_LIST_DIR}/test_core.cpp)
rrt_add_test(test_gguf ${CMAKE_CURRENT_LIST_DIR}/test_gguf.cpp)
# core/trace (profile spans, Chrome trace JSON) and core/crc32c (TFRecord checksums).
rrt_add_test(test_trace ${CMAKE_CURRENT_LIST_DIR}/test_trace.cpp)
# core/cpu_features: cpuid/xgetbv against the kernel's own /proc/cpuinfo flags.
rrt_add_test(test_cpu_features ${CMAKE_CURRENT_LIST_DIR}/test_cpu_features.cpp)
# core/json_file: reading JSON files with errors that name the file, the reason, what to do.
rrt_add_test(test_json_file ${CMAKE_CURRENT_LIST_DIR}/test_json_file.cpp)
