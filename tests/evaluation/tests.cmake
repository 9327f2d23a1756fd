# Per-exit evaluation, multiple choice and the rrt eval report.
rrt_add_test(test_exit_eval ${CMAKE_CURRENT_LIST_DIR}/test_exit_eval.cpp)
rrt_add_test(test_exit_model ${CMAKE_CURRENT_LIST_DIR}/test_exit_model.cpp)

# The figures of rrt eval --plot (log axes for perplexities, threshold labels) and of rrt
# plot-exits (reports compared, read back from their JSON).
rrt_add_test(test_eval_plots ${CMAKE_CURRENT_LIST_DIR}/test_eval_plots.cpp)
