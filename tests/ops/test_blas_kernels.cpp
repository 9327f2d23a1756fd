// OpenBLAS kernel selection (ops/blas_kernels.h): which fallbacks are replaced and by what, and
// the real thing: `rrt --version` names the kernels it runs on after its re-exec.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ops/blas_kernels.h"

namespace rrt::ops {
namespace {

TEST(BlasKernels, OnlyPreAvx2FallbacksAreReplacedByWhatTheCpuRuns) {
  const CpuSimd none{}, avx2{.avx2_fma = true}, avx512{.avx2_fma = true, .avx512 = true};
  EXPECT_EQ(better_openblas_core("Prescott", avx512), "SkylakeX");
  EXPECT_EQ(better_openblas_core("Prescott", avx2), "Haswell");
  EXPECT_EQ(better_openblas_core("Nehalem", avx2), "Haswell");
  EXPECT_EQ(better_openblas_core("Sandybridge", avx512), "SkylakeX");
  EXPECT_EQ(better_openblas_core("Barcelona", avx2), "Haswell");
  EXPECT_EQ(better_openblas_core("Prescott", none), "");  // a CPU without AVX2: keep SSE3
  // Kernel sets the library chose for a CPU it knows stay.
  for (const char* known : {"Haswell", "SkylakeX", "Cooperlake", "SapphireRapids", "Zen"})
    EXPECT_EQ(better_openblas_core(known, avx512), "") << known;
}

TEST(BlasKernels, TheLibraryNamesItsKernels) { EXPECT_FALSE(openblas_core().empty()); }

// `rrt --version` ends with "; OpenBLAS kernels NAME)".
std::string rrt_version_kernels(const std::string& env) {
  const std::string cmd = "env -u OPENBLAS_CORETYPE -u RRT_OPENBLAS_CORETYPE " + env + " " +
                          RRT_CLI_PATH + " --version";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "popen failed";
  std::array<char, 256> buf{};
  std::string out;
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  pclose(p);
  const std::string key = "OpenBLAS kernels ";
  const size_t at = out.find(key);
  if (at == std::string::npos) return "no kernels in: " + out;
  return out.substr(at + key.size(), out.find(')', at) - at - key.size());
}

TEST(BlasKernels, RrtReexecutesOntoTheBetterKernels) {
  // This test process loaded OpenBLAS with whatever it picked (unless OPENBLAS_CORETYPE was set).
  const std::string own = openblas_core();
  const CpuSimd cpu = this_cpu_simd();
  const char* set = std::getenv("OPENBLAS_CORETYPE");
  if (set && *set)
    GTEST_SKIP() << "OPENBLAS_CORETYPE is set for the test run: the library's own pick is unknown";
  const std::string better = better_openblas_core(own, cpu);
  std::printf("OpenBLAS picked %s; rrt asks for %s\n", own.c_str(),
              better.empty() ? "nothing else" : better.c_str());
  EXPECT_EQ(rrt_version_kernels(""), better.empty() ? own : better);
  EXPECT_EQ(rrt_version_kernels("RRT_OPENBLAS_CORETYPE=keep"), own);  // turned off
  if (cpu.avx2_fma) {                                                 // the user's choice wins
    EXPECT_EQ(rrt_version_kernels("OPENBLAS_CORETYPE=Haswell"), "Haswell");
  }
}

}  // namespace
}  // namespace rrt::ops
