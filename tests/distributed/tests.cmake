# distributed/: the communicators (no MPI needed), and under mpirun (label mpi) the MPI
# communicator, data-parallel training equal to one rank, resume across world sizes, failing
# ranks ending the job, stopping on signals, and (labels gpu + mpi) NCCL data parallel on 2
# GPUs; under a local Slurm cluster (label slurm) the launch/ scripts and their requeue cycle.
rrt_add_test(test_communicator ${CMAKE_CURRENT_LIST_DIR}/test_communicator.cpp)
rrt_add_test(test_grad_sync ${CMAKE_CURRENT_LIST_DIR}/test_grad_sync.cpp)

# Compares two checkpoints (also used by tests/cli/signals.sh, so built with or without MPI).
add_executable(checkpoint_diff ${CMAKE_CURRENT_LIST_DIR}/checkpoint_diff.cpp)
target_link_libraries(checkpoint_diff PRIVATE rrt)
target_compile_options(checkpoint_diff PRIVATE ${RRT_CXX_FLAGS})

if(RRT_MPI)

  add_executable(test_mpi_communicator ${CMAKE_CURRENT_LIST_DIR}/test_mpi_communicator.cpp)
  target_link_libraries(test_mpi_communicator PRIVATE rrt GTest::gtest GTest::gtest_main)
  target_include_directories(test_mpi_communicator PRIVATE ${CMAKE_SOURCE_DIR})
  target_compile_options(test_mpi_communicator PRIVATE ${RRT_CXX_FLAGS})

  # One OpenMP thread per rank; root in containers needs Open MPI's two opt-in variables.
  set(_rrt_mpi_env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1
                   OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
  foreach(ranks 2 3)
    add_test(NAME Distributed.MpiCommunicator.${ranks}ranks
      COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe ${MPIEXEC_NUMPROC_FLAG} ${ranks}
              $<TARGET_FILE:test_mpi_communicator>)
  endforeach()
  add_test(NAME Distributed.TrainEqualsOneRank
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/mpi_train.sh $<TARGET_FILE:rrt_cli> ${MPIEXEC_EXECUTABLE}
            $<TARGET_FILE:checkpoint_diff> ${CMAKE_SOURCE_DIR})
  add_test(NAME Distributed.FailingRankEndsTheJob
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/mpi_failure.sh $<TARGET_FILE:rrt_cli> ${MPIEXEC_EXECUTABLE}
            ${CMAKE_SOURCE_DIR} $<TARGET_FILE:rrt_write_fault>)
  add_test(NAME Distributed.SignalsStopEveryRank
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/mpi_signals.sh $<TARGET_FILE:rrt_cli> ${MPIEXEC_EXECUTABLE}
            $<TARGET_FILE:checkpoint_diff> ${CMAKE_SOURCE_DIR})
  # A mixture (data.sources) on 2 and 3 ranks equals 1 rank, and resumes across world sizes.
  add_test(NAME Distributed.MixtureEqualsOneRank
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/mpi_mixture.sh $<TARGET_FILE:rrt_cli> ${MPIEXEC_EXECUTABLE}
            $<TARGET_FILE:checkpoint_diff> ${CMAKE_SOURCE_DIR})
  set_tests_properties(Distributed.MpiCommunicator.2ranks Distributed.MpiCommunicator.3ranks
    Distributed.TrainEqualsOneRank Distributed.MixtureEqualsOneRank Distributed.FailingRankEndsTheJob
    Distributed.SignalsStopEveryRank
    PROPERTIES LABELS mpi ENVIRONMENT "${_rrt_mpi_env}" TIMEOUT 600)

  # train.device: cuda on 2 GPUs with NCCL gradients against 1 GPU (labels gpu and mpi;
  # skipped, 77, with fewer than 2 GPUs visible).
  if(RRT_CUDA)
    add_test(NAME Distributed.NcclTrainEqualsOneGpu
      COMMAND ${CMAKE_CURRENT_LIST_DIR}/nccl_train.sh $<TARGET_FILE:rrt_cli> ${MPIEXEC_EXECUTABLE}
              $<TARGET_FILE:checkpoint_diff> ${CMAKE_SOURCE_DIR})
    set_tests_properties(Distributed.NcclTrainEqualsOneGpu PROPERTIES LABELS "gpu;mpi"
      SKIP_RETURN_CODE 77 ENVIRONMENT "${_rrt_mpi_env}" TIMEOUT 300)
  endif()

  # launch/slurm_*.sbatch through sbatch on a one-node cluster the test starts and stops
  # (tools/local_slurm.sh); skipped (77) without root, slurm-wlm or munge.
  add_test(NAME Distributed.SlurmTrain
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/slurm_train.sh $<TARGET_FILE:rrt_cli>
            $<TARGET_FILE:checkpoint_diff> ${CMAKE_SOURCE_DIR})
  # RESOURCE_LOCK: one local cluster at a time (Sweep.SlurmArray starts one too, on the same
  # ports; run together under ctest -j, one's srun steps fail to launch).
  set_tests_properties(Distributed.SlurmTrain PROPERTIES LABELS slurm SKIP_RETURN_CODE 77
    RESOURCE_LOCK local_slurm
    ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive" TIMEOUT 120)
  # launch/slurm_train.sbatch's requeue cycle: SIGUSR1 before the time limit, a checkpoint, a
  # requeue, a bit-exact resume; scancel's SIGTERM checkpoints without a requeue.
  add_test(NAME Distributed.SlurmRequeue
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/slurm_requeue.sh $<TARGET_FILE:rrt_cli>
            $<TARGET_FILE:checkpoint_diff> ${CMAKE_SOURCE_DIR})
  set_tests_properties(Distributed.SlurmRequeue PROPERTIES LABELS slurm SKIP_RETURN_CODE 77
    RESOURCE_LOCK local_slurm
    ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive" TIMEOUT 300)
endif()
