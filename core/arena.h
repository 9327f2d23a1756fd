// Arena: plan named tensors first, then allocate them all at once in one aligned block.
// The training step only ever hands out views of arenas planned before it starts, so the
// step itself allocates nothing (tests count arena allocations through alloc_count()).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace rrt {

// Zeroed host memory, 64-byte aligned. From 1 MiB on an anonymous mapping, which the kernel
// commits page by page on first write: planning a model costs no memory until the step touches
// it (trainer/memory_check.h relies on that). `what` names the owner in the error.
std::shared_ptr<void> allocate_zeroed(int64_t bytes, const std::string& what);

class Arena {
 public:
  explicit Arena(std::string name, Device device = Device::cpu)
      : name_(std::move(name)), device_(device) {}
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Reserve a named tensor; its view becomes valid after allocate(). Returns its index.
  int plan(const std::string& name, Shape shape, DType dtype = DType::f32);
  // Allocate (zero-filled) storage for every planned tensor. Plans are frozen afterwards. Large
  // arenas are mapped, not touched: their memory is committed page by page on first write.
  void allocate();

  bool allocated() const { return base_ != nullptr; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  TensorView view(const std::string& name) const;
  TensorView view(int index) const;
  int64_t offset_bytes(int index) const { return entries_.at(index).offset; }
  int64_t total_bytes() const { return total_; }
  int size() const { return static_cast<int>(entries_.size()); }
  const std::string& name_of(int index) const { return entries_.at(index).name; }
  void* base() const { return base_; }
  void zero();

  // Number of arena allocations made by this process so far (all arenas).
  static int64_t alloc_count();

 private:
  struct Entry {
    std::string name;
    Shape shape;
    DType dtype;
    int64_t offset;
  };
  std::string name_;
  Device device_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, int> index_;
  int64_t total_ = 0;
  void* base_ = nullptr;
  std::shared_ptr<void> block_;  // allocate_zeroed's
};

}  // namespace rrt
