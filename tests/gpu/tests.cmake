# GPU tests (ctest label gpu): each compares a CUDA path with the CPU path.
