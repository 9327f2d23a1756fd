rrt_add_test(test_fuzz_corpus ${CMAKE_CURRENT_LIST_DIR}/test_safetensors_corpus.cpp)
rrt_add_test(test_fuzz_corpus_gguf ${CMAKE_CURRENT_LIST_DIR}/test_gguf_corpus.cpp)
