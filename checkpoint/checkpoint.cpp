#include "checkpoint/checkpoint.h"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "checkpoint/checkpoint_config.h"
#include "checkpoint/checkpoint_verify.h"
#include "config/config_io.h"
#include "core/durable_file.h"
#include "core/error.h"

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

// The declaration in /state that every dataset carries a checksum attribute (kChecksumAttr).
constexpr const char* kChecksumKind = "crc32";
constexpr const char* kChecksumAttr = "crc32";

// How a file is being read: for messages, and whether it declares checksums.
struct ReadContext {
  std::string where;  // "checkpoint <path>"
  bool verified = false;
};

void write_u32_attr(hid_t obj, const char* name, uint32_t value, const std::string& where) {
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(obj, name, H5T_STD_U32LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  RRT_CHECK(attr >= 0 && H5Awrite(attr, H5T_NATIVE_UINT32, &value) >= 0, where,
            "cannot write attribute '", name, "' (disk full?)");
}

void write_floats(hid_t group, const std::string& name, const float* data, const Shape& shape,
                  const std::string& where) {
  hsize_t dims[kMaxDims];
  for (int d = 0; d < shape.ndim; ++d) dims[d] = static_cast<hsize_t>(shape[d]);
  H5Handle space(H5Screate_simple(shape.ndim, dims, nullptr), H5Sclose);
  H5Handle set(
      H5Dcreate2(group, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose);
  RRT_CHECK(set >= 0, where, "cannot create dataset '", name, "'");
  RRT_CHECK(H5Dwrite(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, where,
            "write of '", name, "' failed (disk full?)");
  const size_t bytes = static_cast<size_t>(shape.numel()) * sizeof(float);
  write_u32_attr(set, kChecksumAttr, checksum_bytes(data, bytes), where);
}

// Checks the dataset's stored checksum against the bytes read (values, little-endian).
void verify_checksum(hid_t set, const std::string& dataset, const void* data, size_t bytes,
                     const ReadContext& ctx) {
  if (!ctx.verified) return;
  if (H5Aexists(set, kChecksumAttr) <= 0)
    throw CheckpointCorrupt(ctx.where, dataset,
                            detail::concat("dataset ", dataset, " has no '", kChecksumAttr,
                                           "' attribute although the file declares checksums; "
                                           "it was altered after rrt wrote it"));
  H5Handle attr(H5Aopen(set, kChecksumAttr, H5P_DEFAULT), H5Aclose);
  H5Handle type(H5Aget_type(attr), H5Tclose);
  uint64_t stored = 0;
  RRT_CHECK(H5Tget_class(type) == H5T_INTEGER && H5Aread(attr, H5T_NATIVE_UINT64, &stored) >= 0,
            ctx.where, "cannot read the checksum of dataset ", dataset);
  const uint32_t computed = checksum_bytes(data, bytes);
  if (stored != computed) {
    char numbers[64];
    std::snprintf(numbers, sizeof(numbers), "stored crc32 %08lx, computed %08x",
                  static_cast<unsigned long>(stored), computed);
    throw CheckpointCorrupt(
        ctx.where, dataset,
        detail::concat("dataset ", dataset, " fails its checksum (", numbers,
                       "): the file is damaged (bytes changed on disk or in a copy). Restore it "
                       "from a good copy or use an older checkpoint (docs/runs.md, \"Verified "
                       "checkpoints\")"));
  }
}

std::string class_name(H5T_class_t c) {
  switch (c) {
    case H5T_INTEGER:
      return "integer";
    case H5T_FLOAT:
      return "floating-point";
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_OPAQUE:
      return "opaque";
    default:
      return "non-numeric";
  }
}

// Datasets may be stored however the writer chose (contiguous, chunked, compressed, float16/64,
// big-endian): H5Dread converts to the memory type. What it cannot convert is refused by name.
void read_floats(hid_t group, const std::string& group_path, const std::string& name, float* data,
                 const Shape& shape, const ReadContext& ctx) {
  const std::string& where = ctx.where;
  const std::string dataset = group_path + "/" + name;
  RRT_CHECK(H5Lexists(group, name.c_str(), H5P_DEFAULT) > 0, where, "has no tensor '", name,
            "'; was it written for a model with this config?");
  H5Handle set(H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (set < 0) throw CheckpointCorrupt(where, dataset, "cannot open dataset " + dataset);
  H5Handle type(H5Dget_type(set), H5Tclose);
  const H5T_class_t type_class = H5Tget_class(type);
  RRT_CHECK(type_class == H5T_FLOAT, where, "dataset ", dataset, " holds ", class_name(type_class),
            " values; checkpoint tensors are floating point");
  H5Handle space(H5Dget_space(set), H5Sclose);
  hsize_t dims[kMaxDims] = {};
  const int nd = H5Sget_simple_extent_ndims(space);
  RRT_CHECK(nd == shape.ndim, where, "tensor '", name, "' has ", nd, " dims, the model expects ",
            shape.str());
  H5Sget_simple_extent_dims(space, dims, nullptr);
  for (int d = 0; d < nd; ++d)
    RRT_CHECK(dims[d] == static_cast<hsize_t>(shape[d]), where, "tensor '", name,
              "' has a different shape than the model's ", shape.str());
  H5Handle create(H5Dget_create_plist(set), H5Pclose);
  RRT_CHECK(H5Pall_filters_avail(create) > 0, where, "dataset ", dataset,
            " is compressed with an HDF5 filter this HDF5 library lacks (e.g. h5py's lzf); "
            "rewrite the file with gzip or no compression (h5repack -f NONE in out)");
  if (H5Dread(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw CheckpointCorrupt(where, dataset,
                            "cannot read dataset " + dataset + " (truncated or damaged file?)");
  verify_checksum(set, dataset, data, static_cast<size_t>(shape.numel()) * sizeof(float), ctx);
}

void write_i64_attr(hid_t obj, const char* name, int64_t value, const std::string& where) {
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  RRT_CHECK(attr >= 0 && H5Awrite(attr, H5T_NATIVE_INT64, &value) >= 0, where,
            "cannot write attribute '", name, "' (disk full?)");
}

// Any integer type (h5py writes Python ints as int64, numpy scalars as their own width).
int64_t read_i64_attr(hid_t obj, const char* name, const std::string& where) {
  RRT_CHECK(H5Aexists(obj, name) > 0, where, "state attribute '", name, "' is missing");
  H5Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  H5Handle type(H5Aget_type(attr), H5Tclose);
  H5Handle space(H5Aget_space(attr), H5Sclose);
  RRT_CHECK(H5Tget_class(type) == H5T_INTEGER && H5Sget_simple_extent_npoints(space) == 1, where,
            "state attribute '", name, "' must be one integer");
  int64_t value = 0;
  RRT_CHECK(H5Aread(attr, H5T_NATIVE_INT64, &value) >= 0, where, "cannot read state attribute '",
            name, "'");
  return value;
}

void write_string(hid_t obj, const char* name, const std::string& text, bool as_attr,
                  const std::string& where) {
  H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, std::max<size_t>(text.size(), 1));
  H5Tset_cset(type, H5T_CSET_UTF8);
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  if (as_attr) {
    H5Handle attr(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    RRT_CHECK(attr >= 0 && H5Awrite(attr, type, text.c_str()) >= 0, where,
              "cannot write attribute '", name, "' (disk full?)");
  } else {
    H5Handle set(H5Dcreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                 H5Dclose);
    RRT_CHECK(set >= 0 && H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.c_str()) >= 0,
              where, "cannot write dataset '", name, "' (disk full?)");
    write_u32_attr(set, kChecksumAttr, checksum_bytes(text.data(), text.size()), where);
  }
}

// One string, fixed-length (rrt, numpy bytes) or variable-length (h5py's default for str), as a
// scalar or a one-element array.
std::string read_string(hid_t obj, bool is_attr, const std::string& what,
                        const std::string& where) {
  H5Handle type(is_attr ? H5Aget_type(obj) : H5Dget_type(obj), H5Tclose);
  H5Handle space(is_attr ? H5Aget_space(obj) : H5Dget_space(obj), H5Sclose);
  RRT_CHECK(H5Tget_class(type) == H5T_STRING && H5Sget_simple_extent_npoints(space) == 1, where,
            what, " must be one string");
  auto read = [&](hid_t memory, void* out) {
    return is_attr ? H5Aread(obj, memory, out)
                   : H5Dread(obj, memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
  };
  if (H5Tis_variable_str(type) > 0) {
    H5Handle memory(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(memory, H5T_VARIABLE);
    H5Tset_cset(memory, H5Tget_cset(type));
    char* text = nullptr;
    if (read(memory, &text) < 0)
      throw CheckpointCorrupt(where, what, "cannot read " + what + " (damaged file?)");
    std::string value = text != nullptr ? text : "";
    H5free_memory(text);
    return value;
  }
  const size_t size = H5Tget_size(type);
  std::string text(size, '\0');
  if (read(type, text.data()) < 0)
    throw CheckpointCorrupt(where, what, "cannot read " + what + " (damaged file?)");
  text.resize(std::strlen(text.c_str()));
  if (H5Tget_strpad(type) == H5T_STR_SPACEPAD) text.erase(text.find_last_not_of(' ') + 1);
  return text;
}

std::string read_text_dataset(hid_t file, const char* name, const ReadContext& ctx) {
  const std::string dataset = std::string("/") + name;
  RRT_CHECK(H5Lexists(file, name, H5P_DEFAULT) > 0, ctx.where, "has no ", dataset, " dataset");
  H5Handle set(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  if (set < 0) throw CheckpointCorrupt(ctx.where, dataset, "cannot open dataset " + dataset);
  std::string text = read_string(set, false, "dataset " + dataset, ctx.where);
  verify_checksum(set, dataset, text.data(), text.size(), ctx);
  return text;
}

hid_t open_for_read(const std::string& path) {
  silence_hdf5();
  const std::string where = "checkpoint " + path;
  RRT_CHECK(fs::exists(path), where, "does not exist");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw CheckpointCorrupt(where, "", "is not an HDF5 file (truncated or not an rrt checkpoint)");
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw CheckpointCorrupt(where, "", "cannot be opened (truncated or corrupt?)");
  return file;
}

// The state's integers in a fixed order, for its checksum (a mixture's counts last, so that the
// checksum of a run on data.path is what it was before mixtures).
std::vector<int64_t> state_values(const TrainState& s, const std::vector<int64_t>& mixture) {
  std::vector<int64_t> values = {s.step,       s.adam_step,   s.data_epoch,
                                 s.data_index, s.tokens_seen, s.world_size};
  values.insert(values.end(), mixture.begin(), mixture.end());
  return values;
}

constexpr const char* kMixtureCounts = "mixture_counts";

void write_i64_array_attr(hid_t obj, const char* name, const std::vector<int64_t>& values,
                          const std::string& where) {
  const hsize_t n = values.size();
  H5Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  H5Handle attr(H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  RRT_CHECK(attr >= 0 && H5Awrite(attr, H5T_NATIVE_INT64, values.data()) >= 0, where,
            "cannot write attribute '", name, "' (disk full?)");
}

std::vector<int64_t> read_i64_array_attr(hid_t obj, const char* name, const std::string& where) {
  H5Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  H5Handle type(H5Aget_type(attr), H5Tclose);
  H5Handle space(H5Aget_space(attr), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  RRT_CHECK(H5Tget_class(type) == H5T_INTEGER && n >= 1, where, "state attribute '", name,
            "' must hold integers");
  std::vector<int64_t> values(static_cast<size_t>(n));
  RRT_CHECK(H5Aread(attr, H5T_NATIVE_INT64, values.data()) >= 0, where,
            "cannot read state attribute '", name, "'");
  return values;
}

CheckpointContents read_header(hid_t file, ReadContext& ctx) {
  const std::string& where = ctx.where;
  CheckpointContents c;
  RRT_CHECK(H5Lexists(file, "state", H5P_DEFAULT) > 0, where, "has no /state group");
  H5Handle state(H5Gopen2(file, "state", H5P_DEFAULT), H5Gclose);
  const int64_t version = read_i64_attr(state, "format_version", where);
  RRT_CHECK(version == kFormatVersion, where, "has format version ", version,
            "; this rrt reads version ", kFormatVersion);
  ctx.verified = H5Aexists(state, "checksum") > 0;
  if (ctx.verified) {
    H5Handle attr(H5Aopen(state, "checksum", H5P_DEFAULT), H5Aclose);
    const std::string kind = read_string(attr, true, "attribute /state/checksum", where);
    RRT_CHECK(kind == kChecksumKind, where, "declares checksums of kind '", kind,
              "'; this rrt verifies '", kChecksumKind, "'");
  }
  c.verified = ctx.verified;
  c.config_yaml = read_text_dataset(file, "config", ctx);
  c.state.step = read_i64_attr(state, "step", where);
  c.state.adam_step = read_i64_attr(state, "adam_step", where);
  c.state.data_epoch = read_i64_attr(state, "data_epoch", where);
  c.state.data_index = read_i64_attr(state, "data_index", where);
  c.state.tokens_seen = read_i64_attr(state, "tokens_seen", where);
  if (H5Aexists(state, "world_size") > 0 || ctx.verified)
    c.state.world_size = read_i64_attr(state, "world_size", where);
  if (H5Aexists(state, "launch_dir") > 0) {
    H5Handle attr(H5Aopen(state, "launch_dir", H5P_DEFAULT), H5Aclose);
    c.launch_dir = read_string(attr, true, "attribute /state/launch_dir", where);
  }
  if (H5Aexists(state, kMixtureCounts) > 0)
    c.mixture_counts = read_i64_array_attr(state, kMixtureCounts, where);
  if (ctx.verified) {
    const std::vector<int64_t> values = state_values(c.state, c.mixture_counts);
    const uint32_t computed = checksum_bytes(values.data(), values.size() * sizeof(int64_t));
    if (read_i64_attr(state, "state_crc32", where) != static_cast<int64_t>(computed))
      throw CheckpointCorrupt(where, "/state",
                              "the attributes of /state (step, data cursor) fail their checksum: "
                              "the file is damaged. Restore it from a good copy or use an older "
                              "checkpoint (docs/runs.md, \"Verified checkpoints\")");
  }
  c.has_optimizer = H5Lexists(file, "optim", H5P_DEFAULT) > 0;
  return c;
}

}  // namespace

namespace {

void write_contents(hid_t file, const std::string& where, const std::string& config_yaml,
                    const ParameterSet& params, AdamW* optimizer, const TrainState& state,
                    const std::vector<int64_t>& mixture_counts) {
  write_string(file, "config", config_yaml, false, where);
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
  write_string(st, "format", "rrt-checkpoint", true, where);
  write_i64_attr(st, "format_version", kFormatVersion, where);
  write_i64_attr(st, "step", state.step, where);
  write_i64_attr(st, "adam_step", state.adam_step, where);
  write_i64_attr(st, "data_epoch", state.data_epoch, where);
  write_i64_attr(st, "data_index", state.data_index, where);
  write_i64_attr(st, "tokens_seen", state.tokens_seen, where);
  write_i64_attr(st, "world_size", state.world_size, where);
  std::error_code cwd_error;  // a deleted working directory: nothing to record
  const std::string launch_dir = std::filesystem::current_path(cwd_error).string();
  if (!cwd_error) write_string(st, "launch_dir", launch_dir, true, where);
  if (!mixture_counts.empty()) write_i64_array_attr(st, kMixtureCounts, mixture_counts, where);
  // Every dataset carries a crc32 attribute; the state's integers are covered here.
  write_string(st, "checksum", kChecksumKind, true, where);
  const std::vector<int64_t> values = state_values(state, mixture_counts);
  write_i64_attr(st, "state_crc32", checksum_bytes(values.data(), values.size() * sizeof(int64_t)),
                 where);
}

}  // namespace

void save_checkpoint(const std::string& path, const std::string& config_yaml,
                     const ParameterSet& params, AdamW* optimizer, const TrainState& state,
                     const std::vector<int64_t>& mixture_counts) {
  silence_hdf5();
  const std::string where = "checkpoint " + path;
  const std::string tmp = temporary_path(path);
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
    write_contents(file, where, config_yaml, params, optimizer, state, mixture_counts);
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
  ReadContext ctx{"checkpoint " + path};
  return read_header(file, ctx);
}

CheckpointContents load_checkpoint(const std::string& path, ParameterSet& params,
                                   AdamW* optimizer) {
  ReadContext ctx{"checkpoint " + path};
  const std::string& where = ctx.where;
  H5Handle file(open_for_read(path), H5Fclose);
  CheckpointContents c = read_header(file, ctx);
  if (!c.verified)
    std::fprintf(stderr,
                 "warning: [%s] carries no checksums (written by an rrt from before checkpoints "
                 "were verified); loading it unverified\n",
                 where.c_str());
  RRT_CHECK(H5Lexists(file, "params", H5P_DEFAULT) > 0, where, "has no /params group");
  H5Handle group(H5Gopen2(file, "params", H5P_DEFAULT), H5Gclose);
  const ParamRegistry& reg = params.registry();
  for (int i = 0; i < reg.size(); ++i)
    read_floats(group, "/params", reg[i].name, params.value(i), reg[i].shape, ctx);
  if (optimizer) {
    RRT_CHECK(c.has_optimizer, where, "holds weights only; cannot resume the optimizer from it");
    RRT_CHECK(!optimizer->sharded(), where,
              "a sharded (ZeRO-1) optimizer is loaded whole, then scattered");
    H5Handle m(H5Gopen2(file, "optim/m", H5P_DEFAULT), H5Gclose);
    H5Handle v(H5Gopen2(file, "optim/v", H5P_DEFAULT), H5Gclose);
    RRT_CHECK(m >= 0 && v >= 0, where, "has no /optim/m or /optim/v group");
    for (int i = 0; i < reg.size(); ++i) {
      read_floats(m, "/optim/m", reg[i].name, optimizer->first_moment().view(i).f32(), reg[i].shape,
                  ctx);
      read_floats(v, "/optim/v", reg[i].name, optimizer->second_moment().view(i).f32(),
                  reg[i].shape, ctx);
    }
    optimizer->set_steps_taken(c.state.adam_step);
  }
  return c;
}

namespace {
// Reads (and so verifies) every dataset directly inside group `path` of the file.
void verify_group(hid_t file, const std::string& path, const ReadContext& ctx) {
  if (H5Lexists(file, path.c_str(), H5P_DEFAULT) <= 0) return;
  H5Handle group(H5Gopen2(file, path.c_str(), H5P_DEFAULT), H5Gclose);
  if (group < 0) throw CheckpointCorrupt(ctx.where, "/" + path, "cannot open group /" + path);
  H5G_info_t info{};
  if (H5Gget_info(group, &info) < 0)
    throw CheckpointCorrupt(ctx.where, "/" + path, "cannot list group /" + path);
  std::vector<float> values;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char name[1024] = {};
    if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof(name),
                           H5P_DEFAULT) < 0)
      throw CheckpointCorrupt(ctx.where, "/" + path, "cannot list group /" + path);
    H5O_info_t object{};
    if (H5Oget_info_by_name(group, name, &object, H5P_DEFAULT) < 0 ||
        object.type != H5O_TYPE_DATASET)
      continue;
    H5Handle set(H5Dopen2(group, name, H5P_DEFAULT), H5Dclose);
    H5Handle space(H5Dget_space(set), H5Sclose);
    Shape shape;
    hsize_t dims[kMaxDims] = {};
    const int nd = H5Sget_simple_extent_ndims(space);
    RRT_CHECK(nd >= 0 && nd <= kMaxDims, ctx.where, "dataset /", path, "/", name, " has ", nd,
              " dims");
    H5Sget_simple_extent_dims(space, dims, nullptr);
    shape.ndim = nd;
    for (int d = 0; d < nd; ++d) shape.dims[d] = static_cast<int64_t>(dims[d]);
    values.resize(static_cast<size_t>(shape.numel()));
    read_floats(group, "/" + path, name, values.data(), shape, ctx);
  }
}
}  // namespace

void verify_checkpoint(const std::string& path) {
  H5Handle file(open_for_read(path), H5Fclose);
  ReadContext ctx{"checkpoint " + path};
  read_header(file, ctx);
  for (const char* group : {"params", "optim/m", "optim/v"}) verify_group(file, group, ctx);
}

CheckpointModel load_checkpoint_model(const std::string& path) {
  CheckpointModel m;
  m.config = checkpoint_run_config(read_checkpoint_header(path), path + " (/config)");
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

}  // namespace rrt
