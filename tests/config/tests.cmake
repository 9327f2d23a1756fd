# The run config: schema, YAML round trip, overrides, docs tables; the objective sections.
rrt_add_test(test_config ${CMAKE_CURRENT_LIST_DIR}/test_config.cpp)
rrt_add_test(test_objective ${CMAKE_CURRENT_LIST_DIR}/test_objective.cpp)
rrt_add_test(test_config_sources ${CMAKE_CURRENT_LIST_DIR}/test_config_sources.cpp)
