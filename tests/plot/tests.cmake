# The PNG writer and the line charts; the y axis (linear or log) and point labels.
rrt_add_test(test_png ${CMAKE_CURRENT_LIST_DIR}/test_png.cpp)
rrt_add_test(test_plot_axis ${CMAKE_CURRENT_LIST_DIR}/test_axis.cpp)
