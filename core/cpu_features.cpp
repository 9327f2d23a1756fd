#include "core/cpu_features.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace rrt {

namespace {

#if defined(__x86_64__) || defined(__i386__)
bool bit(uint32_t reg, int b) { return (reg >> b) & 1u; }

uint64_t read_xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// Linux keeps the AMX tile data state (XFEATURE 18) off until a process asks for it; without the
// permission the first tile instruction faults. Returns whether the permission is now held.
bool request_amx_permission() {
#if defined(__linux__) && defined(__x86_64__)
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
  uint64_t perm = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &perm) != 0) return false;
  return (perm >> kXfeatureXtiledata) & 1u;
#else
  return false;  // other kernels: assume no AMX rather than fault
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
  uint32_t a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const uint32_t max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor + 0, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;
  if (max_leaf < 7) return f;
  __cpuid(1, a, b, c, d);
  const bool osxsave = bit(c, 27);
  if (!osxsave) return f;  // no xgetbv: the OS saves no AVX state at all
  const uint64_t xcr0 = read_xcr0();
  // SSE, AVX, opmask, ZMM upper halves and ZMM16-31 all saved by the OS.
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  // XTILECFG (17) and XTILEDATA (18).
  const bool os_tiles = ((xcr0 >> 17) & 3u) == 3u;

  __cpuid_count(7, 0, a, b, c, d);
  const uint32_t max_sub7 = a;
  f.avx512f = os_zmm && bit(b, 16);
  f.avx512_core = f.avx512f && bit(b, 17) /*dq*/ && bit(b, 30) /*bw*/ && bit(b, 31) /*vl*/;
  f.amx_bf16 = os_tiles && bit(d, 22);
  f.amx_tile = os_tiles && bit(d, 24);
  if (max_sub7 >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512_bf16 = f.avx512_core && bit(a, 5);
  }
  if (f.amx_tile) f.amx_os_enabled = request_amx_permission();
  return f;
}
#else
CpuFeatures detect() { return {}; }
#endif

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool cpu_has_amx_bf16(const CpuFeatures& f) { return f.amx_tile && f.amx_bf16 && f.amx_os_enabled; }

bool cpu_has_bf16_matmul(const CpuFeatures& f) { return cpu_has_amx_bf16(f) || f.avx512_bf16; }

std::string describe_bf16_features(const CpuFeatures& f) {
  std::string s;
  auto add = [&s](const char* name) { s += s.empty() ? name : std::string(" ") + name; };
  if (f.avx512_bf16) add("avx512_bf16");
  if (f.amx_bf16) add("amx_bf16");
  if (f.amx_tile)
    add(f.amx_os_enabled ? "amx_tile (enabled by the OS)"
                         : "amx_tile (the OS refused the tile state)");
  return s.empty() ? "neither AMX nor AVX512_BF16" : s;
}

}  // namespace rrt
