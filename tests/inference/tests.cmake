rrt_add_test(test_inference
  ${CMAKE_CURRENT_LIST_DIR}/test_engine.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_generate.cpp
)
