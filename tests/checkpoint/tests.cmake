# The HDF5 checkpoint format: round trip, atomic writes, pruning, checksums and foreign files.
rrt_add_test(test_checkpoint ${CMAKE_CURRENT_LIST_DIR}/test_checkpoint.cpp)
rrt_add_test(test_checkpoint_verify ${CMAKE_CURRENT_LIST_DIR}/test_checkpoint_verify.cpp)
# Any model source (checkpoint/model_source.h): .h5, HF directory, .gguf, as one function opens them.
rrt_add_test(test_model_source ${CMAKE_CURRENT_LIST_DIR}/test_model_source.cpp)
# A checkpoint's relative config paths, read from the directory its run was launched in.
rrt_add_test(test_checkpoint_config ${CMAKE_CURRENT_LIST_DIR}/test_checkpoint_config.cpp)
