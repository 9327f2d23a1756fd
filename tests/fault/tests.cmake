# Fault injection for writes: a full disk or a kill at each write site of the rrt binary,
# through an LD_PRELOAD library (no root or mounts needed).
add_library(rrt_write_fault SHARED ${CMAKE_CURRENT_LIST_DIR}/write_fault.c)
target_link_libraries(rrt_write_fault PRIVATE ${CMAKE_DL_LIBS})
add_test(NAME Fault.WritesFailWithTheFileNamed
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/write_faults.sh $<TARGET_FILE:rrt_cli>
          $<TARGET_FILE:rrt_write_fault> ${CMAKE_SOURCE_DIR})
set_tests_properties(Fault.WritesFailWithTheFileNamed PROPERTIES
  ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive")
