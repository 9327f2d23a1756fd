rrt_add_test(test_model
  ${CMAKE_CURRENT_LIST_DIR}/test_pytorch_parity.cpp
)
