// A thin layer over the HDF5 C API for the token shards: handles that close themselves, a guard
// that keeps HDF5 from printing its error stack, and scalar attribute helpers. Internal to data/.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>

namespace rrt::h5 {

// Owns one hid_t and releases it with the matching H5?close function.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, kInvalid)), close_(other.close_) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, kInvalid);
      close_ = other.close_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  // Closes now; returns false when HDF5 reports a failure (e.g. a flush that could not write).
  bool reset() {
    herr_t status = 0;
    if (id_ >= 0 && close_ != nullptr) status = close_(id_);
    id_ = kInvalid;
    return status >= 0;
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  static constexpr hid_t kInvalid = -1;
  hid_t id_ = kInvalid;
  Closer close_ = nullptr;
};

// While alive, HDF5 does not print its error stack to stderr; our exceptions say what failed.
class QuietErrors {
 public:
  QuietErrors();
  ~QuietErrors();
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The innermost message on HDF5's error stack (e.g. "truncated file: eof = ..."), or "" when the
// stack is empty. Call it right after the failing call, before any other HDF5 call.
std::string last_error();

// " (HDF5: <last_error()>)" or "" — for appending to our own messages.
std::string error_suffix();

// Scalar attributes on a file, group or dataset. Strings are written as variable-length UTF-8
// (h5py returns them as str); both variable- and fixed-length strings are read.
void write_attribute(hid_t object, const char* name, int64_t value, const std::string& where);
void write_attribute(hid_t object, const char* name, const std::string& value,
                     const std::string& where);
bool has_attribute(hid_t object, const char* name);
int64_t read_int_attribute(hid_t object, const char* name, const std::string& where);
std::string read_string_attribute(hid_t object, const char* name, const std::string& where);

}  // namespace rrt::h5
