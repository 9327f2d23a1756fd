rrt_add_test(test_inference
  ${CMAKE_CURRENT_LIST_DIR}/test_engine.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_generate.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_serve_bench.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_scheduler.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_exit_classifier.cpp
)
# rrt generate and rrt serve-bench end to end (shell script).
add_test(NAME Inference.CliSmoke
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/cli_smoke.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})
set_tests_properties(Inference.CliSmoke PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")
# Its own binary: it replaces malloc and operator new for the whole process.
rrt_add_test(test_inference_no_allocation ${CMAKE_CURRENT_LIST_DIR}/test_engine_no_allocation.cpp)
