# The PNG writer and the line charts.
rrt_add_test(test_png ${CMAKE_CURRENT_LIST_DIR}/test_png.cpp)
