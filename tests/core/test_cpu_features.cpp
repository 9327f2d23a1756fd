// core/cpu_features reads cpuid and xgetbv itself; Linux's /proc/cpuinfo flags come from the same
// cpuid bits filtered by what the kernel enabled, so the two must agree on this machine.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "core/cpu_features.h"

namespace rrt {
namespace {

std::set<std::string> proc_cpuinfo_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::set<std::string> flags;
    for (std::string w; words >> w;) flags.insert(w);
    return flags;
  }
  return {};
}

TEST(CpuFeatures, AgreesWithProcCpuinfo) {
#if !(defined(__x86_64__) && defined(__linux__))
  GTEST_SKIP() << "cpuid and /proc/cpuinfo: x86-64 Linux only";
#endif
  const std::set<std::string> flags = proc_cpuinfo_flags();
  if (flags.empty()) GTEST_SKIP() << "no flags line in /proc/cpuinfo";
  const CpuFeatures& f = cpu_features();
  std::printf("vendor %s; bf16: %s\n", f.vendor.c_str(), describe_bf16_features(f).c_str());
  EXPECT_FALSE(f.vendor.empty());
  EXPECT_EQ(f.avx512f, flags.count("avx512f") == 1);
  EXPECT_EQ(f.avx512_core, flags.count("avx512f") && flags.count("avx512bw") &&
                               flags.count("avx512dq") && flags.count("avx512vl"));
  EXPECT_EQ(f.avx512_bf16, f.avx512_core && flags.count("avx512_bf16") == 1);
  EXPECT_EQ(f.amx_tile, flags.count("amx_tile") == 1);
  EXPECT_EQ(f.amx_bf16, flags.count("amx_bf16") == 1);
  if (!f.amx_tile) {
    EXPECT_FALSE(f.amx_os_enabled);  // never asked for on a CPU without tiles
  }
  EXPECT_EQ(cpu_has_bf16_matmul(f), f.avx512_bf16 || cpu_has_amx_bf16(f));
}

TEST(CpuFeatures, DescribesTheBf16Flags) {
  CpuFeatures none;
  EXPECT_EQ(describe_bf16_features(none), "neither AMX nor AVX512_BF16");
  EXPECT_FALSE(cpu_has_bf16_matmul(none));
  CpuFeatures amx;
  amx.amx_tile = amx.amx_bf16 = true;
  EXPECT_FALSE(cpu_has_amx_bf16(amx));  // no OS permission yet
  EXPECT_EQ(describe_bf16_features(amx), "amx_bf16 amx_tile (the OS refused the tile state)");
  amx.amx_os_enabled = true;
  EXPECT_TRUE(cpu_has_amx_bf16(amx));
  EXPECT_TRUE(cpu_has_bf16_matmul(amx));
  CpuFeatures zen4;
  zen4.avx512f = zen4.avx512_core = zen4.avx512_bf16 = true;
  EXPECT_EQ(describe_bf16_features(zen4), "avx512_bf16");
  EXPECT_TRUE(cpu_has_bf16_matmul(zen4));
}

}  // namespace
}  // namespace rrt
