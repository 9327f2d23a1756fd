# rrt serve (serve/): only in a build with cpp-httplib (RRT_SERVE).
if(RRT_SERVE)
  rrt_add_test(test_serve ${CMAKE_CURRENT_LIST_DIR}/test_server.cpp)
  # rrt serve as a process: start, answer, SIGTERM (shell script).
  add_test(NAME Serve.CliSmoke
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/cli_smoke.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})
  set_tests_properties(Serve.CliSmoke PROPERTIES
    ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive" TIMEOUT 300)
  # rrt serve on an HF directory and on a GGUF file: greedy completions equal rrt generate's.
  add_test(NAME Serve.AnySource
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/any_source.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})
  set_tests_properties(Serve.AnySource PROPERTIES
    ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive" TIMEOUT 300)
endif()
