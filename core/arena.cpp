#include "core/arena.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace rrt {

namespace {
// 64-byte alignment keeps every view on its own cache line and suits AVX-512 loads.
constexpr int64_t kAlign = 64;
// From this size on, an arena is an anonymous mapping: the kernel hands out zero pages and
// commits each only when first touched, so planning a model (and its memory check,
// trainer/memory_check.h) costs no memory until the step writes it. Below it, malloc + memset.
constexpr int64_t kMapAtLeast = int64_t{1} << 20;
std::atomic<int64_t> g_alloc_count{0};
}  // namespace

std::shared_ptr<void> allocate_zeroed(int64_t bytes, const std::string& what) {
  bytes = bytes > 0 ? bytes : kAlign;
  if (bytes >= kMapAtLeast) {
    void* p = mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    RRT_CHECK(p != MAP_FAILED, what, "out of memory reserving ", bytes,
              " bytes (the system refused the mapping; see the memory check of rrt train)");
    // Page-aligned and zero-filled.
    return std::shared_ptr<void>(p, [bytes](void* q) { munmap(q, static_cast<size_t>(bytes)); });
  }
  const int64_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  void* p = std::aligned_alloc(kAlign, static_cast<size_t>(rounded));
  RRT_CHECK(p != nullptr, what, "out of memory allocating ", bytes, " bytes");
  std::memset(p, 0, static_cast<size_t>(rounded));
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

Arena::~Arena() = default;

int Arena::plan(const std::string& name, Shape shape, DType dtype) {
  RRT_CHECK(!allocated(), "Arena " + name_, "cannot plan '", name, "' after allocate()");
  RRT_CHECK(!has(name), "Arena " + name_, "tensor '", name, "' planned twice");
  RRT_CHECK(device_ == Device::cpu, "Arena " + name_, "only CPU arenas exist in this build");
  int64_t bytes = shape.numel() * dtype_size(dtype);
  entries_.push_back({name, shape, dtype, total_});
  total_ += (bytes + kAlign - 1) / kAlign * kAlign;
  index_[name] = static_cast<int>(entries_.size()) - 1;
  return static_cast<int>(entries_.size()) - 1;
}

void Arena::allocate() {
  RRT_CHECK(!allocated(), "Arena " + name_, "allocate() called twice");
  block_ = allocate_zeroed(total_, "Arena " + name_);
  base_ = block_.get();
  ++g_alloc_count;
}

TensorView Arena::view(const std::string& name) const {
  auto it = index_.find(name);
  RRT_CHECK(it != index_.end(), "Arena " + name_, "no tensor named '", name, "'");
  return view(it->second);
}

TensorView Arena::view(int index) const {
  RRT_CHECK(allocated(), "Arena " + name_, "view requested before allocate()");
  const Entry& e = entries_.at(index);
  TensorView v;
  v.data = static_cast<char*>(base_) + e.offset;
  v.dtype = e.dtype;
  v.device = device_;
  v.shape = e.shape;
  return v;
}

void Arena::zero() {
  if (base_) std::memset(base_, 0, static_cast<size_t>(total_));
}

int64_t Arena::alloc_count() { return g_alloc_count.load(); }

}  // namespace rrt
