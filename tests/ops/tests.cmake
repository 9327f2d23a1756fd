# Op tests: one executable per op family, each with finite-difference gradient checks in double.
foreach(family gradcheck matmul embedding norm rope attention activation lora cross_entropy exit_loss adamw)
  rrt_add_test(ops_${family}_test ${CMAKE_CURRENT_LIST_DIR}/test_${family}.cpp)
endforeach()
