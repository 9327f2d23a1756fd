# trainer/sweep/: expansion, validation, conversion, local launch and resume, summary, plot.
# The launch test trains through the rrt binary, as `rrt sweep --launch local` does.
rrt_add_test(test_sweep ${CMAKE_CURRENT_LIST_DIR}/test_sweep.cpp
  ${CMAKE_CURRENT_LIST_DIR}/test_sweep_launch.cpp ${CMAKE_CURRENT_LIST_DIR}/test_sweep_cli.cpp)
target_compile_definitions(test_sweep PRIVATE RRT_CLI_PATH="$<TARGET_FILE:rrt_cli>")
add_dependencies(test_sweep rrt_cli)

# `rrt sweep --launch slurm` against a one-node cluster the test starts and stops
# (tools/local_slurm.sh): sbatch --test-only accepts the array, then it runs; skipped (77)
# without root, slurm-wlm or munge.
add_test(NAME Sweep.SlurmArray
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/sweep_slurm.sh $<TARGET_FILE:rrt_cli> ${CMAKE_SOURCE_DIR})
set_tests_properties(Sweep.SlurmArray PROPERTIES LABELS slurm SKIP_RETURN_CODE 77
  RESOURCE_LOCK local_slurm
  ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive" TIMEOUT 180)
