// Which OpenBLAS kernels rrt's CPU path runs on. A DYNAMIC_ARCH OpenBLAS (Debian's) picks its
// kernels when it loads, from the CPU models it knows; on a CPU newer than the library (Debian
// 12's 0.3.21 on a 5th-generation Xeon, model 207) it falls back to its SSE3 "Prescott" kernels,
// which served SmolLM2 1.8x slower here than its AVX-512 ones (docs/benchmarks.md). The
// OPENBLAS_CORETYPE variable overrides the choice, but only before the library loads, so rrt's
// main re-executes itself once with it set.
#pragma once

#include <string>

namespace rrt::ops {

// The instruction sets that decide between OpenBLAS's x86 kernel sets.
struct CpuSimd {
  bool avx2_fma = false;  // AVX2 and FMA: OpenBLAS's "Haswell" kernels
  bool avx512 = false;    // AVX-512 F, CD, BW, DQ and VL: its "SkylakeX" kernels
};
CpuSimd this_cpu_simd();

// The kernel set OpenBLAS runs ("Prescott", "Haswell", "SkylakeX", ...).
std::string openblas_core();

// The kernel set to ask for instead of `picked`, or "" when `picked` is fine: only a pre-AVX2
// kernel set on a CPU with AVX2 is replaced (a fallback for a CPU the library does not know),
// by "SkylakeX" where the CPU has AVX-512, else "Haswell".
std::string better_openblas_core(const std::string& picked, const CpuSimd& cpu);

// Call first in main. When OPENBLAS_CORETYPE is unset and better_openblas_core names a kernel
// set, sets OPENBLAS_CORETYPE and re-executes the program with the same arguments (it returns
// when there is nothing to do, or if the exec fails: the program then runs on the kernels it
// has). RRT_OPENBLAS_CORETYPE=keep turns it off. Child processes inherit the setting. Under a
// tool that follows one process (valgrind without --trace-children=yes), set OPENBLAS_CORETYPE or
// RRT_OPENBLAS_CORETYPE=keep so that the program it starts is the one that runs.
void select_openblas_kernels(char** argv);

}  // namespace rrt::ops
