// What this CPU (and the OS under it) can run of the bf16 instruction sets, read from cpuid and
// xgetbv once. The bf16 backend picks its path from this, `rrt --version` names it, and the bf16
// tests skip with the reason on a CPU that has neither AMX nor AVX512_BF16.
#pragma once

#include <string>

namespace rrt {

struct CpuFeatures {
  // Each flag is true only when the CPU reports it AND the OS saves the registers it needs
  // (XCR0): a kernel that did not enable ZMM state makes AVX-512 unusable whatever cpuid says.
  bool avx512f = false;
  bool avx512_core = false;  // F + BW + DQ + VL: what oneDNN's "avx512_core" kernels need
  bool avx512_bf16 = false;  // vdpbf16ps / vcvtne2ps2bf16 (Cooper Lake, Zen 4, Sapphire Rapids)
  bool amx_tile = false;     // cpuid says AMX tiles exist
  bool amx_bf16 = false;     // cpuid says the tiles multiply bf16
  // Linux hands out the 8 KiB AMX tile state only to a process that asks for it
  // (arch_prctl ARCH_REQ_XCOMP_PERM, kernel 5.16+); false when it refused or was never asked.
  bool amx_os_enabled = false;
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ...
};

// Read once per process (thread-safe); asks Linux for the AMX tile state on first call when the
// CPU has AMX, as oneDNN itself would.
const CpuFeatures& cpu_features();

// AMX-BF16 usable (CPU + OS permission).
bool cpu_has_amx_bf16(const CpuFeatures& f);
// Either bf16 matrix path usable: AMX-BF16, or AVX512_BF16 on top of AVX-512 core.
bool cpu_has_bf16_matmul(const CpuFeatures& f);
// The bf16 flags, for messages: "avx512_bf16 amx_bf16 amx_tile (AMX enabled by the OS)", or
// "neither AMX nor AVX512_BF16".
std::string describe_bf16_features(const CpuFeatures& f);

}  // namespace rrt
