rrt_add_test(test_fuzz_corpus ${CMAKE_CURRENT_LIST_DIR}/test_safetensors_corpus.cpp)
