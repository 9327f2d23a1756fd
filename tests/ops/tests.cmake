# Op tests: one executable per op family, each with finite-difference gradient checks in double.
foreach(family gradcheck matmul embedding norm rope attention activation lora cross_entropy exit_loss
               logit_softcap adamw)
  rrt_add_test(ops_${family}_test ${CMAKE_CURRENT_LIST_DIR}/test_${family}.cpp)
endforeach()
# OpenBLAS kernel selection, down to the rrt binary's re-exec.
rrt_add_test(ops_blas_kernels_test ${CMAKE_CURRENT_LIST_DIR}/test_blas_kernels.cpp)
target_compile_definitions(ops_blas_kernels_test PRIVATE RRT_CLI_PATH="$<TARGET_FILE:rrt_cli>")
add_dependencies(ops_blas_kernels_test rrt_cli)
include(${CMAKE_CURRENT_LIST_DIR}/cpu_bf16/tests.cmake)
# The bf16 GEMMs over oneDNN (skipped with the reason where the build or the CPU cannot run them).
rrt_add_test(ops_gemm_bf16_test ${CMAKE_CURRENT_LIST_DIR}/test_gemm_bf16.cpp)
target_compile_definitions(ops_gemm_bf16_test PRIVATE RRT_CLI_PATH="$<TARGET_FILE:rrt_cli>")
add_dependencies(ops_gemm_bf16_test rrt_cli)
