rrt_add_test(test_trainer ${CMAKE_CURRENT_LIST_DIR}/test_trainer.cpp)
rrt_add_test(test_distill ${CMAKE_CURRENT_LIST_DIR}/test_distill.cpp)
rrt_add_test(test_resume_safety ${CMAKE_CURRENT_LIST_DIR}/test_resume_safety.cpp)
rrt_add_test(test_observe ${CMAKE_CURRENT_LIST_DIR}/test_observe.cpp)
rrt_add_test(test_signals ${CMAKE_CURRENT_LIST_DIR}/test_signals.cpp)
rrt_add_test(test_run_safety ${CMAKE_CURRENT_LIST_DIR}/test_run_safety.cpp)
rrt_add_test(test_retention ${CMAKE_CURRENT_LIST_DIR}/test_retention.cpp)
# train.precision: bf16 on the CPU against fp32, its resume, the refused combinations.
rrt_add_test(test_precision ${CMAKE_CURRENT_LIST_DIR}/test_precision.cpp)
