#include "ops/blas_kernels.h"

#include <cblas.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <string_view>

namespace rrt::ops {

CpuSimd this_cpu_simd() {
  CpuSimd s;
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's checks include the OS's support for the wider registers (XGETBV).
  s.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  s.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
#endif
  return s;
}

std::string openblas_core() {
  const char* name = openblas_get_corename();
  return name ? name : "";
}

std::string better_openblas_core(const std::string& picked, const CpuSimd& cpu) {
  // OpenBLAS's x86 kernel sets older than AVX2: what it falls back to for a CPU it does not know.
  static constexpr std::array<std::string_view, 20> kPreAvx2 = {
      "Katmai",      "Coppermine", "Northwood",     "Prescott",   "Banias",
      "Atom",        "Core2",      "Penryn",        "Dunnington", "Nehalem",
      "Sandybridge", "Opteron",    "Opteron(SSE3)", "Barcelona",  "Bobcat",
      "Bulldozer",   "Piledriver", "Steamroller",   "Excavator",  "Nano"};
  bool old = false;
  for (std::string_view k : kPreAvx2) old = old || picked == k;
  if (!old || !cpu.avx2_fma) return "";
  return cpu.avx512 ? "SkylakeX" : "Haswell";
}

void select_openblas_kernels(char** argv) {
  const char* chosen = std::getenv("OPENBLAS_CORETYPE");
  if (chosen && *chosen) return;  // the user's choice, or this is the re-exec
  const char* keep = std::getenv("RRT_OPENBLAS_CORETYPE");
  if (keep && std::string_view(keep) == "keep") return;
  const std::string better = better_openblas_core(openblas_core(), this_cpu_simd());
  if (better.empty()) return;
  if (setenv("OPENBLAS_CORETYPE", better.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE");  // no exec (no /proc): keep what is loaded, say nothing
}

}  // namespace rrt::ops
