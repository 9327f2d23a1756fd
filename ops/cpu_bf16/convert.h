// bf16 <-> fp32 on the CPU, 16 lanes at a time: what every element-wise op of the bf16 backend
// (ops/cpu_bf16/backend.h) reads and writes through. Values are read from bf16, computed in fp32
// and rounded once, to nearest even, on store.
//
// The arithmetic is written with GCC vector extensions (F16: 16 floats), which compile to one
// AVX-512 register under -march=native on an AVX-512 CPU and to narrower registers elsewhere, so
// the backend builds on every CPU; the rounding store uses AVX512_BF16's vcvtne2ps2bf16 /
// vcvtneps2bf16 where the compiler targets it, and the same rounding in integer lanes otherwise
// (bf16::from_float of core/dtype.h, lane-wise).
#pragma once

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

#if defined(__AVX512BF16__) && defined(__AVX512VL__)
#include <immintrin.h>
#define RRT_BF16_NATIVE 1
#endif

namespace rrt::ops::cpu_bf16 {

constexpr int64_t kLanes = 16;
typedef float F16 __attribute__((vector_size(64)));
typedef uint32_t U16x32 __attribute__((vector_size(64)));
typedef uint16_t U16x16 __attribute__((vector_size(32)));

inline F16 splat(float x) { return F16{} + x; }

inline F16 widen(U16x16 bits) {
  const U16x32 u = __builtin_convertvector(bits, U16x32) << 16;
  F16 f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline U16x16 narrow(F16 f) {
#ifdef RRT_BF16_NATIVE
  __m512 v;
  std::memcpy(&v, &f, sizeof v);
  const __m256bh r = _mm512_cvtneps_pbh(v);
  U16x16 out;
  std::memcpy(&out, &r, sizeof out);
  return out;
#else
  U16x32 u;
  std::memcpy(&u, &f, sizeof u);
  const U16x32 nan = (U16x32)((u & 0x7fffffffu) > 0x7f800000u);  // all ones where NaN
  const U16x32 rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const U16x32 quiet = (u >> 16) | 0x40u;
  return __builtin_convertvector((nan & quiet) | (~nan & rounded), U16x16);
#endif
}

// Loads n <= 16 values (the rest 0); stores n <= 16.
inline F16 load(const bf16* p, int64_t n = kLanes) {
  U16x16 bits{};
  std::memcpy(&bits, static_cast<const void*>(p), static_cast<size_t>(n) * sizeof(bf16));
  return widen(bits);
}
inline F16 load(const float* p, int64_t n = kLanes) {
  F16 v{};
  std::memcpy(&v, p, static_cast<size_t>(n) * sizeof(float));
  return v;
}
inline void store(bf16* p, F16 v, int64_t n = kLanes) {
  const U16x16 bits = narrow(v);
  std::memcpy(static_cast<void*>(p), &bits, static_cast<size_t>(n) * sizeof(bf16));
}
inline void store(float* p, F16 v, int64_t n = kLanes) {
  std::memcpy(p, &v, static_cast<size_t>(n) * sizeof(float));
}

inline float sum(F16 v) {
  float s = 0;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// Whole arrays (single-threaded; callers parallelise over rows or blocks).
inline void to_float(const bf16* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store(y + i, load(x + i));
  if (i < n) store(y + i, load(x + i, n - i), n - i);
}
inline void to_bf16(const float* x, bf16* y, int64_t n) {
  int64_t i = 0;
#ifdef RRT_BF16_NATIVE
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {  // two registers per instruction
    const __m512bh r = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + kLanes), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(y + i, reinterpret_cast<const __m512i&>(r));
  }
#endif
  for (; i + kLanes <= n; i += kLanes) store(y + i, load(x + i));
  if (i < n) store(y + i, load(x + i, n - i), n - i);
}
// y = round(y + x): a backward's "adds into" on a bf16 gradient, rounded once.
inline void add_into(const float* x, bf16* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store(y + i, load(y + i) + load(x + i));
  if (i < n) store(y + i, load(y + i, n - i) + load(x + i, n - i), n - i);
}

inline float to_float(bf16 x) { return x.to_float(); }
inline bf16 round_bf16(float x) { return bf16::from_float(x); }

}  // namespace rrt::ops::cpu_bf16
