# GPU tests (ctest label gpu): each compares a CUDA path with the CPU path.
rrt_add_gpu_test(test_gemm_gpu ${CMAKE_CURRENT_LIST_DIR}/test_gemm_gpu.cpp)
rrt_add_gpu_test(test_cross_entropy_gpu ${CMAKE_CURRENT_LIST_DIR}/test_cross_entropy_gpu.cpp)
rrt_add_gpu_test(test_exit_loss_gpu ${CMAKE_CURRENT_LIST_DIR}/test_exit_loss_gpu.cpp)
rrt_add_gpu_test(test_ops_elementwise_gpu ${CMAKE_CURRENT_LIST_DIR}/test_ops_elementwise_gpu.cpp)
rrt_add_gpu_test(test_attention_gpu ${CMAKE_CURRENT_LIST_DIR}/test_attention_gpu.cpp)
rrt_add_gpu_test(test_kv_ops_gpu ${CMAKE_CURRENT_LIST_DIR}/test_kv_ops_gpu.cpp)
rrt_add_gpu_test(test_lora_rows_gpu ${CMAKE_CURRENT_LIST_DIR}/test_lora_rows_gpu.cpp)
rrt_add_gpu_test(test_nccl_gpu ${CMAKE_CURRENT_LIST_DIR}/test_nccl_gpu.cpp)
# The whole model, the trainer and the inference engine on the GPU share one binary (the bundle carries every binary
# with all of rrt's device code inside; one fewer keeps it under the device tool's carry limit).
rrt_add_gpu_test(test_model_gpu ${CMAKE_CURRENT_LIST_DIR}/test_model_gpu.cpp
                 ${CMAKE_CURRENT_LIST_DIR}/test_exits_gpu.cpp
                 ${CMAKE_CURRENT_LIST_DIR}/test_trainer_gpu.cpp
                 ${CMAKE_CURRENT_LIST_DIR}/test_grad_ready_gpu.cpp
                 ${CMAKE_CURRENT_LIST_DIR}/test_engine_gpu.cpp)
