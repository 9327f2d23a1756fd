rrt_add_test(test_model
  ${CMAKE_CURRENT_LIST_DIR}/test_pytorch_parity.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_model_structure.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_document_mask.cpp
)
# Its own binary: it replaces malloc and operator new for the whole process.
rrt_add_test(test_no_allocation
  ${CMAKE_CURRENT_LIST_DIR}/test_no_allocation.cpp
)
rrt_add_test(test_kd
  ${CMAKE_CURRENT_LIST_DIR}/test_kd_parity.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_early_exit.cpp
)
rrt_add_test(test_convert ${CMAKE_CURRENT_LIST_DIR}/test_convert.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_convert_init.cpp)
rrt_add_test(test_convert_progress ${CMAKE_CURRENT_LIST_DIR}/test_convert_progress.cpp)
rrt_add_test(test_hf_import ${CMAKE_CURRENT_LIST_DIR}/test_hf_import.cpp)
rrt_add_test(test_hf_gemma3 ${CMAKE_CURRENT_LIST_DIR}/test_hf_gemma3.cpp)
rrt_add_test(test_hf_final_softcap ${CMAKE_CURRENT_LIST_DIR}/test_hf_final_softcap.cpp)
rrt_add_test(test_hf_export ${CMAKE_CURRENT_LIST_DIR}/test_hf_export.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_hf_export_families.cpp)
rrt_add_test(test_gguf_import ${CMAKE_CURRENT_LIST_DIR}/test_gguf_import.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_gguf_import_families.cpp)
rrt_add_test(test_family ${CMAKE_CURRENT_LIST_DIR}/test_family.cpp)
rrt_add_test(test_presets ${CMAKE_CURRENT_LIST_DIR}/test_presets.cpp)
rrt_add_test(test_core_bf16 ${CMAKE_CURRENT_LIST_DIR}/test_core_bf16.cpp)
rrt_add_test(test_real_shapes ${CMAKE_CURRENT_LIST_DIR}/test_real_shapes.cpp)
# GGUF export, read back by GGUF import.
rrt_add_test(test_gguf_export ${CMAKE_CURRENT_LIST_DIR}/test_gguf_export.cpp)
# The Gemma architectures (gemma, gemma2, gemma3): import against transformers, export read back.
rrt_add_test(test_gguf_gemma ${CMAKE_CURRENT_LIST_DIR}/test_gguf_gemma_import.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_gguf_gemma_export.cpp)
