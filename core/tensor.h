// TensorView: a non-owning, typed, contiguous view of up to 4 dims on one device.
// Storage is owned elsewhere (an Arena); views are cheap to copy and never free memory.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace rrt {

constexpr int kMaxDims = 4;

struct Shape {
  std::array<int64_t, kMaxDims> dims{1, 1, 1, 1};
  int ndim = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) {
    RRT_CHECK(d.size() <= kMaxDims, "Shape", "at most ", kMaxDims, " dims, got ", d.size());
    for (int64_t v : d) {
      RRT_CHECK(v >= 0, "Shape", "negative dimension ", v);
      dims[ndim++] = v;
    }
  }
  int64_t operator[](int i) const { return dims[i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= dims[i];
    return n;
  }
  bool operator==(const Shape& o) const {
    if (ndim != o.ndim) return false;
    for (int i = 0; i < ndim; ++i)
      if (dims[i] != o.dims[i]) return false;
    return true;
  }
  std::vector<int64_t> vec() const { return {dims.begin(), dims.begin() + ndim}; }
  std::string str() const;
};

// "[2, 3]": how messages print a shape (file headers give shapes as vectors).
inline std::string shape_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}
inline std::string Shape::str() const { return shape_str(vec()); }

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::f32;
  Device device = Device::cpu;
  Shape shape;

  int64_t numel() const { return shape.numel(); }
  int64_t bytes() const { return numel() * dtype_size(dtype); }
  bool empty() const { return data == nullptr || numel() == 0; }

  template <typename T>
  T* as() const {
    RRT_CHECK(dtype == dtype_of<T>(), "TensorView", "asked for ", dtype_name(dtype_of<T>()),
              " but the view holds ", dtype_name(dtype));
    return static_cast<T*>(data);
  }
  float* f32() const { return as<float>(); }
  int32_t* i32() const { return as<int32_t>(); }
};

}  // namespace rrt
