#include "trainer/checkpoint.h"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/durable_file.h"
#include "core/error.h"
#include "trainer/config_io.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

constexpr int kFormatVersion = 1;

// Closes an HDF5 handle on scope exit; H5Xclose functions differ by kind.
struct H5Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  H5Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~H5Handle() {
    if (id >= 0) close(id);
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  operator hid_t() const { return id; }
};

// HDF5 prints its own error stack by default; rrt reports errors itself.
void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

void write_floats(hid_t group, const std::string& name, const float* data, const Shape& shape,
                  const std::string& where) {
  hsize_t dims[kMaxDims];
  for (int d = 0; d < shape.ndim; ++d) dims[d] = static_cast<hsize_t>(shape[d]);
  H5Handle space(H5Screate_simple(shape.ndim, dims, nullptr), H5Sclose);
  H5Handle set(H5Dcreate2(group, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT),
               H5Dclose);
  RRT_CHECK(set >= 0, where, "cannot create dataset '", name, "'");
  RRT_CHECK(H5Dwrite(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, where,
            "write of '", name, "' failed (disk full?)");
}

void read_floats(hid_t group, const std::string& name, float* data, const Shape& shape,
                 const std::string& where) {
  RRT_CHECK(H5Lexists(group, name.c_str(), H5P_DEFAULT) > 0, where, "has no tensor '", name,
            "'; was it written for a model with this config?");
  H5Handle set(H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose);
  H5Handle space(H5Dget_space(set), H5Sclose);
  hsize_t dims[kMaxDims] = {};
  const int nd = H5Sget_simple_extent_ndims(space);
  RRT_CHECK(nd == shape.ndim, where, "tensor '", name, "' has ", nd, " dims, the model expects ",
            shape.str());
  H5Sget_simple_extent_dims(space, dims, nullptr);
  for (int d = 0; d < nd; ++d)
    RRT_CHECK(dims[d] == static_cast<hsize_t>(shape[d]), where, "tensor '", name,
              "' has a different shape than the model's ", shape.str());
  RRT_CHECK(H5Dread(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, where,
            "cannot read tensor '", name, "' (truncated file?)");
}

void write_i64_attr(hid_t obj, const char* name, int64_t value) {
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  H5Awrite(attr, H5T_NATIVE_INT64, &value);
}

int64_t read_i64_attr(hid_t obj, const char* name, const std::string& where) {
  RRT_CHECK(H5Aexists(obj, name) > 0, where, "state attribute '", name, "' is missing");
  H5Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  int64_t value = 0;
  H5Aread(attr, H5T_NATIVE_INT64, &value);
  return value;
}

void write_string(hid_t obj, const char* name, const std::string& text, bool as_attr) {
  H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, std::max<size_t>(text.size(), 1));
  H5Tset_cset(type, H5T_CSET_UTF8);
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  if (as_attr) {
    H5Handle attr(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    H5Awrite(attr, type, text.c_str());
  } else {
    H5Handle set(H5Dcreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                 H5Dclose);
    H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.c_str());
  }
}

std::string read_string_dataset(hid_t file, const char* name, const std::string& where) {
  RRT_CHECK(H5Lexists(file, name, H5P_DEFAULT) > 0, where, "has no ", name, " dataset");
  H5Handle set(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  H5Handle type(H5Dget_type(set), H5Tclose);
  const size_t size = H5Tget_size(type);
  std::string text(size, '\0');
  RRT_CHECK(H5Dread(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data()) >= 0, where,
            "cannot read ", name);
  text.resize(std::strlen(text.c_str()));
  return text;
}

hid_t open_for_read(const std::string& path) {
  silence_hdf5();
  const std::string where = "checkpoint " + path;
  RRT_CHECK(fs::exists(path), where, "does not exist");
  RRT_CHECK(H5Fis_hdf5(path.c_str()) > 0, where,
            "is not an HDF5 file (truncated or not an rrt checkpoint)");
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  RRT_CHECK(file >= 0, where, "cannot be opened (truncated or corrupt?)");
  return file;
}

CheckpointContents read_header(hid_t file, const std::string& where) {
  CheckpointContents c;
  c.config_yaml = read_string_dataset(file, "config", where);
  RRT_CHECK(H5Lexists(file, "state", H5P_DEFAULT) > 0, where, "has no /state group");
  H5Handle state(H5Gopen2(file, "state", H5P_DEFAULT), H5Gclose);
  const int64_t version = read_i64_attr(state, "format_version", where);
  RRT_CHECK(version == kFormatVersion, where, "has format version ", version,
            "; this rrt reads version ", kFormatVersion);
  c.state.step = read_i64_attr(state, "step", where);
  c.state.adam_step = read_i64_attr(state, "adam_step", where);
  c.state.data_epoch = read_i64_attr(state, "data_epoch", where);
  c.state.data_index = read_i64_attr(state, "data_index", where);
  c.state.tokens_seen = read_i64_attr(state, "tokens_seen", where);
  c.has_optimizer = H5Lexists(file, "optim", H5P_DEFAULT) > 0;
  return c;
}

}  // namespace

namespace {

void write_contents(hid_t file, const std::string& where, const std::string& config_yaml,
                    const ParameterSet& params, AdamW* optimizer, const TrainState& state) {
  write_string(file, "config", config_yaml, false);
  H5Handle group(H5Gcreate2(file, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  const ParamRegistry& reg = params.registry();
  for (int i = 0; i < reg.size(); ++i)
    write_floats(group, reg[i].name, params.value(i), reg[i].shape, where);
  if (optimizer) {
    RRT_CHECK(!optimizer->sharded(), where,
              "a sharded (ZeRO-1) optimizer is gathered into a whole one before saving");
    H5Handle optim(H5Gcreate2(file, "optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    H5Handle m(H5Gcreate2(optim, "m", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    H5Handle v(H5Gcreate2(optim, "v", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    for (int i = 0; i < reg.size(); ++i) {
      write_floats(m, reg[i].name, optimizer->first_moment().view(i).f32(), reg[i].shape, where);
      write_floats(v, reg[i].name, optimizer->second_moment().view(i).f32(), reg[i].shape, where);
    }
  }
  H5Handle st(H5Gcreate2(file, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  write_string(st, "format", "rrt-checkpoint", true);
  write_i64_attr(st, "format_version", kFormatVersion);
  write_i64_attr(st, "step", state.step);
  write_i64_attr(st, "adam_step", state.adam_step);
  write_i64_attr(st, "data_epoch", state.data_epoch);
  write_i64_attr(st, "data_index", state.data_index);
  write_i64_attr(st, "tokens_seen", state.tokens_seen);
}

}  // namespace

void save_checkpoint(const std::string& path, const std::string& config_yaml,
                     const ParameterSet& params, AdamW* optimizer, const TrainState& state) {
  silence_hdf5();
  const std::string where = "checkpoint " + path;
  const std::string tmp = path + ".tmp";
  // Refuse up front when the disk visibly lacks the room: the common full-disk case then never
  // reaches HDF5's write path at all.
  int64_t need = 1 << 20;
  for (int i = 0; i < params.registry().size(); ++i)
    need += params.numel(i) * static_cast<int64_t>(sizeof(float)) * (optimizer ? 3 : 1);
  const fs::path dir = fs::absolute(path).parent_path();
  std::error_code space_ec;
  const fs::space_info space = fs::space(dir, space_ec);
  RRT_CHECK(space_ec || static_cast<int64_t>(space.available) >= need, where, "needs about ",
            need >> 20, " MiB but ", dir.string(), " has ", space.available >> 20,
            " MiB free; free space or point train.run_dir elsewhere. The previous checkpoint, "
            "if any, is untouched.");
  const hid_t file = H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  RRT_CHECK(file >= 0, where, "cannot create ", tmp, " (directory missing or not writable?)");
  std::string failure;
  try {
    write_contents(file, where, config_yaml, params, optimizer, state);
  } catch (const Error& e) {
    failure = e.what();
  }
  // The close flushes what HDF5 still buffers; its failure is a failed write too.
  if (H5Fclose(file) < 0 || !failure.empty()) {
    // HDF5 1.10 cannot close a file whose flush failed (a second H5Fclose crashes), so the
    // handle is abandoned; `rrt` leaves through _Exit after an error for that reason.
    std::error_code ignored;
    fs::remove(tmp, ignored);
    RRT_FAIL(where, "writing the checkpoint failed (disk full?); ",
             failure.empty() ? "closing the file failed" : failure,
             ". The previous checkpoint, if any, is untouched.");
  }
  commit_temporary_file(tmp, path, where);
}

CheckpointContents read_checkpoint_header(const std::string& path) {
  H5Handle file(open_for_read(path), H5Fclose);
  return read_header(file, "checkpoint " + path);
}

CheckpointContents load_checkpoint(const std::string& path, ParameterSet& params,
                                   AdamW* optimizer) {
  const std::string where = "checkpoint " + path;
  H5Handle file(open_for_read(path), H5Fclose);
  CheckpointContents c = read_header(file, where);
  RRT_CHECK(H5Lexists(file, "params", H5P_DEFAULT) > 0, where, "has no /params group");
  H5Handle group(H5Gopen2(file, "params", H5P_DEFAULT), H5Gclose);
  const ParamRegistry& reg = params.registry();
  for (int i = 0; i < reg.size(); ++i)
    read_floats(group, reg[i].name, params.value(i), reg[i].shape, where);
  if (optimizer) {
    RRT_CHECK(c.has_optimizer, where, "holds weights only; cannot resume the optimizer from it");
    RRT_CHECK(!optimizer->sharded(), where,
              "a sharded (ZeRO-1) optimizer is loaded whole, then scattered");
    H5Handle m(H5Gopen2(file, "optim/m", H5P_DEFAULT), H5Gclose);
    H5Handle v(H5Gopen2(file, "optim/v", H5P_DEFAULT), H5Gclose);
    for (int i = 0; i < reg.size(); ++i) {
      read_floats(m, reg[i].name, optimizer->first_moment().view(i).f32(), reg[i].shape, where);
      read_floats(v, reg[i].name, optimizer->second_moment().view(i).f32(), reg[i].shape, where);
    }
    optimizer->set_steps_taken(c.state.adam_step);
  }
  return c;
}

CheckpointModel load_checkpoint_model(const std::string& path) {
  CheckpointModel m;
  m.config = parse_run_config(read_checkpoint_header(path).config_yaml, path + " (/config)");
  m.params = std::make_unique<ParameterSet>(m.config.model, ParameterSet::Grads::without);
  m.state = load_checkpoint(path, *m.params, nullptr).state;
  return m;
}

std::string checkpoint_path(const std::string& dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step_%08ld.h5", static_cast<long>(step));
  return (fs::path(dir) / name).string();
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() == 16 && name.rfind("step_", 0) == 0 && name.substr(13) == ".h5")
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());  // zero-padded step numbers sort by step
  return out;
}

void prune_checkpoints(const std::string& dir, int64_t keep_last) {
  auto all = list_checkpoints(dir);
  for (size_t i = 0; keep_last > 0 && i + static_cast<size_t>(keep_last) < all.size(); ++i)
    fs::remove(all[i]);
}

}  // namespace rrt
