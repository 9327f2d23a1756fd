# The CPU bf16 backend (ops/cpu_bf16/): its ops against the fp32 CPU backend on the op-test table;
# each test skips on a CPU without AVX512_BF16.
foreach(family elementwise projection attention head_loss)
  rrt_add_test(ops_bf16_${family}_test ${CMAKE_CURRENT_LIST_DIR}/test_${family}_bf16.cpp)
endforeach()
