rrt_add_test(test_trainer ${CMAKE_CURRENT_LIST_DIR}/test_trainer.cpp)
rrt_add_test(test_distill ${CMAKE_CURRENT_LIST_DIR}/test_distill.cpp)
rrt_add_test(test_resume_safety ${CMAKE_CURRENT_LIST_DIR}/test_resume_safety.cpp)
rrt_add_test(test_observe ${CMAKE_CURRENT_LIST_DIR}/test_observe.cpp)
rrt_add_test(test_signals ${CMAKE_CURRENT_LIST_DIR}/test_signals.cpp)
rrt_add_test(test_run_safety ${CMAKE_CURRENT_LIST_DIR}/test_run_safety.cpp)
rrt_add_test(test_retention ${CMAKE_CURRENT_LIST_DIR}/test_retention.cpp)
# train.precision: bf16 on the CPU against fp32, its resume, the refused combinations.
rrt_add_test(test_precision ${CMAKE_CURRENT_LIST_DIR}/test_precision.cpp)

# Issue 20's 300-step curve: the demo's relaxed model trained in bf16 and in fp32 from the same
# initialisation on the demo corpus; the bf16 curve within a stated tolerance of fp32's. Label
# `long` (about a minute on one core): `ctest -LE long` leaves it out.
add_executable(test_precision_curve ${CMAKE_CURRENT_LIST_DIR}/test_precision_curve.cpp)
target_link_libraries(test_precision_curve PRIVATE rrt GTest::gtest GTest::gtest_main)
target_include_directories(test_precision_curve PRIVATE ${CMAKE_SOURCE_DIR})
target_compile_options(test_precision_curve PRIVATE ${RRT_CXX_FLAGS})
target_compile_definitions(test_precision_curve PRIVATE RRT_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
gtest_discover_tests(test_precision_curve DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS long TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")
# data.sources: a mixture's bit-exact resume, per-source metrics, epoch caps against the run.
rrt_add_test(test_mixture_training ${CMAKE_CURRENT_LIST_DIR}/test_mixture_training.cpp)
