// Included first by every simulated kernel file (tests/gpu/simulate.sh): the CUDA built-ins that
// g++ lacks, written for the fiber scheduler of sim_scheduler.h. threadIdx and blockIdx name the
// running fiber's, __shared__ variables are function statics (one block runs at a time), warp
// shuffles and ballots exchange values through a per-warp barrier, atomics are plain
// read-modify-writes (fibers never interleave inside one). convert.py turns each launch
// kernel<<<grid, block, smem, stream>>>(args) into rrt_sim::launch(grid, block, smem, kernel, ...).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "tests/gpu/simulation/sim_scheduler.h"

namespace rrt_sim {

inline const uint3& current_thread() { return state().thread_idx[state().current]; }
inline unsigned linear_thread() { return static_cast<unsigned>(state().current); }
inline void* dynamic_shared() { return state().dynamic_shared.data(); }

// A static __shared__ variable outlives its block here; on a GPU a block finds garbage in it.
// The first thread of each block to pass its declaration fills it with 0xFF bytes (NaN, -1),
// before any thread can use it, so a read of what the block never wrote shows.
inline void poison_shared(void* p, size_t bytes) {
  static std::unordered_map<void*, uint64_t> poisoned_in;  // variable -> block serial
  uint64_t& serial = poisoned_in[p];
  if (serial == state().block_serial) return;
  serial = state().block_serial;
  std::memset(p, 0xFF, bytes);
}

// Every lane of the calling warp publishes `raw`, waits for the whole warp, and gets the
// published values of all lanes (read before the warp's next exchange may overwrite them).
inline const uint64_t* warp_exchange(uint64_t raw) {
  BlockState& s = state();
  const unsigned t = linear_thread(), warp = t / 32;
  std::vector<uint64_t>& buffer = s.exchange[s.warp_phase[t]++ & 1];
  buffer[t] = raw;
  arrive_and_wait(s.warp_barriers[warp]);
  return buffer.data() + warp * 32;
}

// A warp's lanes must all take part (full masks only, as in rrt's kernels).
inline void check_full_mask(unsigned mask) {
  const BlockState& s = state();
  const unsigned warp = linear_thread() / 32, lanes = s.warp_barriers[warp].expected;
  const unsigned full = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
  if ((mask & full) != full) {
    std::fprintf(stderr, "[simulate] warp mask %#x does not name every lane; not simulated\n",
                 mask);
    std::abort();
  }
}

template <typename T>
T shuffle_from(unsigned mask, T v, unsigned src_lane) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  check_full_mask(mask);
  uint64_t raw = 0;
  std::memcpy(&raw, &v, sizeof(T));
  const uint64_t* lanes = warp_exchange(raw);
  T r;
  std::memcpy(&r, lanes + src_lane, sizeof(T));
  return r;
}

template <class Tuple, class Kernel>
struct LaunchArgs {
  Kernel kernel;
  Tuple args;
};
template <class L>
void run_body(void* p) {
  auto* l = static_cast<L*>(p);
  std::apply(l->kernel, l->args);  // each thread gets its own copies of the arguments
}

// The arguments convert to the kernel's parameter types once, on the host, as a launch does.
template <class... P, class... A>
void launch(dim3 grid, dim3 block, size_t dynamic_shared_bytes, void (*kernel)(P...), A&&... a) {
  using L = LaunchArgs<std::tuple<std::decay_t<P>...>, void (*)(P...)>;
  L l{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(a)...)};
  run_grid(grid, block, dynamic_shared_bytes, &run_body<L>, &l);
}

}  // namespace rrt_sim

#define threadIdx (::rrt_sim::current_thread())
#define blockIdx (::rrt_sim::state().block_idx)
#define blockDim (::rrt_sim::state().block)
#define gridDim (::rrt_sim::state().grid)
#undef __shared__
#define __shared__ static
#undef __launch_bounds__
#define __launch_bounds__(...)

inline void __syncthreads() { rrt_sim::arrive_and_wait(rrt_sim::state().block_barrier); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  rrt_sim::check_full_mask(mask);
  rrt_sim::warp_exchange(0);
}

// The lane semantics of the CUDA programming guide, `width` segments included.
template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const unsigned lane = rrt_sim::linear_thread() % 32, base = lane / width * width;
  return rrt_sim::shuffle_from(mask, v, base + unsigned(src) % width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const unsigned lane = rrt_sim::linear_thread() % 32, src = lane ^ unsigned(lane_mask);
  return rrt_sim::shuffle_from(mask, v, src / width < (lane / width) + 1 ? src : lane);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const unsigned lane = rrt_sim::linear_thread() % 32;
  return rrt_sim::shuffle_from(mask, v,
                               lane % width + delta < unsigned(width) ? lane + delta : lane);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const unsigned lane = rrt_sim::linear_thread() % 32;
  return rrt_sim::shuffle_from(mask, v, lane % width >= delta ? lane - delta : lane);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  rrt_sim::check_full_mask(mask);
  const uint64_t* lanes = rrt_sim::warp_exchange(predicate != 0);
  const unsigned warp = rrt_sim::linear_thread() / 32;
  unsigned bits = 0;
  for (unsigned l = 0; l < rrt_sim::state().warp_barriers[warp].expected; ++l)
    bits |= unsigned(lanes[l] & 1) << l;
  return bits;
}
inline int __any_sync(unsigned mask, int p) { return __ballot_sync(mask, p) != 0; }
inline int __all_sync(unsigned mask, int p) {
  const unsigned lanes = rrt_sim::state().warp_barriers[rrt_sim::linear_thread() / 32].expected;
  return __ballot_sync(mask, p) == (lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u);
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }

// Atomics: a fiber is never interrupted between the read and the write.
template <typename T>
T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
template <typename T>
T atomicMin(T* p, T v) {
  const T old = *p;
  *p = std::min(old, v);
  return old;
}
template <typename T>
T atomicMax(T* p, T v) {
  const T old = *p;
  *p = std::max(old, v);
  return old;
}
template <typename T>
T atomicExch(T* p, T v) {
  const T old = *p;
  *p = v;
  return old;
}
template <typename T>
T atomicCAS(T* p, T compare, T v) {
  const T old = *p;
  if (old == compare) *p = v;
  return old;
}

// CUDA's min/max overloads over mixed integer types; fast-math intrinsics as the exact functions
// (the GPU's approximations differ in the last bits: the tests' tolerances cover both).
template <typename A, typename B>
auto min(A a, B b) {
  using T = std::common_type_t<A, B>;
  return T(a) < T(b) ? T(a) : T(b);
}
template <typename A, typename B>
auto max(A a, B b) {
  using T = std::common_type_t<A, B>;
  return T(a) < T(b) ? T(b) : T(a);
}
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __fdividef(a, b) ((a) / (b))
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __saturatef(float x) { return std::clamp(x, 0.f, 1.f); }

// Kernels' launch checks: a bad configuration already threw from rrt_sim::launch.
#include "core/cuda/cuda_check.h"
#undef RRT_CUDA_CHECK_LAUNCH
#define RRT_CUDA_CHECK_LAUNCH() ((void)0)
