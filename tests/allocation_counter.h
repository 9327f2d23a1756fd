// Counts every heap allocation of the process while g_counting is set: malloc, calloc, realloc,
// aligned_alloc, posix_memalign and operator new are replaced for the whole binary, so include
// this header in exactly one source file of a test binary of its own. OpenBLAS's threaded GEMM
// driver mallocs a small job descriptor on every multi-threaded call (library internals, not
// tensor memory); those are recognised by their return address inside libopenblas (call
// dl_iterate_phdr(find_blas, nullptr) first) and counted apart in g_blas_allocs.
#pragma once

#include <link.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_heap_allocs{0}, g_blas_allocs{0};
uintptr_t g_blas_begin = 0, g_blas_end = 0;  // libopenblas's loaded address range

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

__attribute__((always_inline)) inline void note_allocation(void* caller) {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  const auto pc = reinterpret_cast<uintptr_t>(caller);
  (pc >= g_blas_begin && pc < g_blas_end ? g_blas_allocs : g_heap_allocs).fetch_add(1);
}
}  // namespace

#define RRT_NOTE_ALLOCATION() note_allocation(__builtin_return_address(0))

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
void* malloc(size_t n) {
  RRT_NOTE_ALLOCATION();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t s) {
  RRT_NOTE_ALLOCATION();
  return __libc_calloc(n, s);
}
void* realloc(void* p, size_t n) {
  RRT_NOTE_ALLOCATION();
  return __libc_realloc(p, n);
}
void* aligned_alloc(size_t a, size_t n) {
  RRT_NOTE_ALLOCATION();
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
  RRT_NOTE_ALLOCATION();
  *out = __libc_memalign(a, n);
  return *out ? 0 : 12;  // ENOMEM
}
}

void* operator new(size_t n) {
  RRT_NOTE_ALLOCATION();
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
// glibc's own free, as operator new above takes glibc's malloc: GCC pairs a `new` pointer
// with std::free as a mismatch (-Wmismatched-new-delete) when it inlines these.
void operator delete(void* p) noexcept { __libc_free(p); }
void operator delete[](void* p) noexcept { __libc_free(p); }
void operator delete(void* p, size_t) noexcept { __libc_free(p); }
void operator delete[](void* p, size_t) noexcept { __libc_free(p); }
