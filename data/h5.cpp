#include "data/h5.h"

#include "core/error.h"

namespace rrt::h5 {

QuietErrors::QuietErrors() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

QuietErrors::~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

namespace {
herr_t keep_innermost(unsigned position, const H5E_error2_t* error, void* out) {
  // Walking upward, position 0 is the innermost (most specific) error.
  if (position == 0 && error != nullptr && error->desc != nullptr)
    *static_cast<std::string*>(out) = error->desc;
  return 0;
}
}  // namespace

std::string last_error() {
  std::string text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, &text);
  return text;
}

std::string error_suffix() {
  std::string text = last_error();
  return text.empty() ? std::string() : " (HDF5: " + text + ")";
}

void write_attribute(hid_t object, const char* name, int64_t value, const std::string& where) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(object, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  RRT_CHECK(attr.valid(), where, "cannot create attribute '", name, "'", error_suffix());
  RRT_CHECK(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) >= 0, where, "cannot write attribute '",
            name, "'", error_suffix());
}

void write_attribute(hid_t object, const char* name, const std::string& value,
                     const std::string& where) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
              H5Aclose);
  RRT_CHECK(attr.valid(), where, "cannot create attribute '", name, "'", error_suffix());
  const char* text = value.c_str();
  RRT_CHECK(H5Awrite(attr.get(), type.get(), &text) >= 0, where, "cannot write attribute '", name,
            "'", error_suffix());
}

bool has_attribute(hid_t object, const char* name) { return H5Aexists(object, name) > 0; }

namespace {
// Opens attribute `name`, which must hold exactly one element.
Handle open_scalar_attribute(hid_t object, const char* name, const std::string& where) {
  RRT_CHECK(has_attribute(object, name), where, "lacks the attribute '", name,
            "'; this is not an rrt token shard (write shards with `rrt prepare`)");
  Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  RRT_CHECK(attr.valid(), where, "cannot open attribute '", name, "'", error_suffix());
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  RRT_CHECK(H5Sget_simple_extent_npoints(space.get()) == 1, where, "attribute '", name,
            "' must hold a single value");
  return attr;
}
}  // namespace

int64_t read_int_attribute(hid_t object, const char* name, const std::string& where) {
  Handle attr = open_scalar_attribute(object, name, where);
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  RRT_CHECK(H5Tget_class(type.get()) == H5T_INTEGER, where, "attribute '", name,
            "' must be an integer");
  int64_t value = 0;
  RRT_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, &value) >= 0, where, "cannot read attribute '",
            name, "'", error_suffix());
  return value;
}

std::string read_string_attribute(hid_t object, const char* name, const std::string& where) {
  Handle attr = open_scalar_attribute(object, name, where);
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  RRT_CHECK(H5Tget_class(type.get()) == H5T_STRING, where, "attribute '", name,
            "' must be a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* text = nullptr;
    RRT_CHECK(H5Aread(attr.get(), mem.get(), &text) >= 0, where, "cannot read attribute '", name,
              "'", error_suffix());
    std::string value = text != nullptr ? text : "";
    H5free_memory(text);
    return value;
  }
  // Fixed-length (numpy bytes from h5py): may be NUL- or space-padded.
  const size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  RRT_CHECK(H5Aread(attr.get(), type.get(), value.data()) >= 0, where, "cannot read attribute '",
            name, "'", error_suffix());
  value.resize(value.find_last_not_of(std::string("\0 ", 2)) + 1);
  return value;
}

}  // namespace rrt::h5
