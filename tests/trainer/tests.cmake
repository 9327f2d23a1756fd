rrt_add_test(test_config ${CMAKE_CURRENT_LIST_DIR}/test_config.cpp)
rrt_add_test(test_checkpoint ${CMAKE_CURRENT_LIST_DIR}/test_checkpoint.cpp)
rrt_add_test(test_trainer ${CMAKE_CURRENT_LIST_DIR}/test_trainer.cpp)
rrt_add_test(test_objective ${CMAKE_CURRENT_LIST_DIR}/test_objective.cpp)
