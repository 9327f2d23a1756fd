// The engine's calls allocate nothing after construction: run_stage over rows at mixed stages,
// exit heads, KV propagation and copies. Its own binary: it replaces malloc and operator new for
// the whole process (as tests/model/test_no_allocation.cpp does for the training step) and
// counts every allocation while the window is open; OpenBLAS's own (a job descriptor per
// multi-threaded GEMM, library internals) are told apart by their return address and reported.
#include <gtest/gtest.h>

#include <link.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "tests/inference/tiny_models.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_heap{0}, g_blas{0};
uintptr_t g_blas_begin = 0, g_blas_end = 0;

int find_blas(dl_phdr_info* info, size_t, void*) {
  if (!std::strstr(info->dlpi_name, "libopenblas")) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uintptr_t lo = info->dlpi_addr + ph.p_vaddr, hi = lo + ph.p_memsz;
    if (!g_blas_begin || lo < g_blas_begin) g_blas_begin = lo;
    if (hi > g_blas_end) g_blas_end = hi;
  }
  return 1;
}

__attribute__((always_inline)) inline void note(void* caller) {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  const auto pc = reinterpret_cast<uintptr_t>(caller);
  (pc >= g_blas_begin && pc < g_blas_end ? g_blas : g_heap).fetch_add(1);
}
#define NOTE() note(__builtin_return_address(0))
}  // namespace

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* malloc(size_t n) {
  NOTE();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t s) {
  NOTE();
  return __libc_calloc(n, s);
}
void* realloc(void* p, size_t n) {
  NOTE();
  return __libc_realloc(p, n);
}
void* aligned_alloc(size_t a, size_t n) {
  NOTE();
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
  NOTE();
  *out = __libc_memalign(a, n);
  return *out ? 0 : 12;  // ENOMEM
}
}

void* operator new(size_t n) {
  NOTE();
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace rrt {
namespace {

using inference::StageRow;

TEST(EngineNoAllocation, CallsAllocateNothingAfterConstruction) {
  dl_iterate_phdr(find_blas, nullptr);
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 8);
  inference::Engine& e = *tm.engine;
  const int64_t D = spec.model.d_model, V = spec.model.vocab;
  std::vector<float> resid(static_cast<size_t>(8 * D)), logits(static_cast<size_t>(8 * V));
  std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8};
  auto step = [&](int32_t pos) {
    // Prefill-like rows of slot 0, then three slots at three different stages.
    e.embed(tokens.data(), 4, resid.data());
    StageRow prompt[4];
    for (int32_t t = 0; t < 4; ++t) prompt[t] = {0, pos + t, 0};
    e.run_stage(prompt, 4, resid.data());
    const StageRow mixed[3] = {{0, pos + 4, 2}, {1, pos, 1}, {2, pos, 0}};
    e.run_stage(mixed, 3, resid.data());
    e.exit_logits(1, resid.data(), 3, logits.data());
    e.exit_logits(3, resid.data(), 3, logits.data());
    const StageRow exited[2] = {{1, pos, 0}, {2, pos, 1}};
    e.propagate_kv(exited, 2, resid.data());
    e.copy_kv(StageRow{0, pos, 0});
  };
  step(0);  // warm-up: OpenMP's thread pool and OpenBLAS's buffers
  g_counting = true;
  for (int32_t pos = 5; pos < 30; pos += 5) step(pos);
  g_counting = false;
  std::printf("engine calls: %ld heap allocations, %ld inside OpenBLAS\n", g_heap.load(),
              g_blas.load());
  EXPECT_EQ(g_heap.load(), 0);
  RecordProperty("openblas_allocations", std::to_string(g_blas.load()));
}

}  // namespace
}  // namespace rrt
