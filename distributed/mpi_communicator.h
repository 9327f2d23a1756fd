// The MPI communicator: MPI_COMM_WORLD, host buffers, MPI_THREAD_FUNNELED (only the thread that
// initialised MPI calls it; OpenMP threads never do). Compiled only when RRT_MPI is on.
#pragma once

#include <memory>

#include "distributed/communicator.h"

namespace rrt {

// Initialises MPI on the first call (MPI_Init_thread) and registers MPI_Finalize for exit.
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace rrt
