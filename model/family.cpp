#include "model/family.h"

#include <algorithm>
#include <map>
#include <string_view>

#include "core/error.h"
#include "model/layer_pattern.h"
#include "model/registry.h"

namespace rrt {
namespace {

// The three names a qkv_per_head rule fills at layer l: its own (q's weight or bias), then k's
// and v's, spelled by the registry.
std::vector<std::string> qkv_names(const std::string& q, int64_t l, const std::string& format) {
  std::vector<std::string> names;
  for (Proj p : {Proj::q, Proj::k, Proj::v}) {
    if (q == ParamRegistry::block_name(l, Proj::q))
      names.push_back(ParamRegistry::block_name(l, p));
    else if (q == ParamRegistry::bias_name(l, Proj::q))
      names.push_back(ParamRegistry::bias_name(l, p));
  }
  RRT_CHECK(names.size() == 3, format, "the qkv_per_head rule for '", q,
            "' does not name a q weight or bias (an internal error: fix model/families.cpp)");
  return names;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Rows and columns (1 for a vector) of a parameter shape.
std::pair<int64_t, int64_t> rows_cols(const std::vector<int64_t>& shape) {
  return {shape.at(0), shape.size() == 2 ? shape[1] : 1};
}

// Where rrt row r of a head lives in llama.cpp's order: row j * Dh/2 + i is stored at 2i + j.
int64_t rope_pair_row(int64_t r, int64_t dh) {
  const int64_t half = dh / 2, j = r / half, i = r % half;
  return 2 * i + j;
}

// The heads a layout's rows are grouped in; checks that the part shapes fit them.
int64_t heads_of(RowLayout rows, const ModelConfig& m,
                 const std::vector<std::vector<int64_t>>& parts) {
  const int64_t heads = rows == RowLayout::rope_pairs_k ? m.n_kv_heads : m.n_heads;
  const size_t count = rows == RowLayout::qkv_per_head ? 3 : 1;
  RRT_CHECK(parts.size() == count, "row layout", "expects ", count, " parameters, got ",
            parts.size());
  for (const auto& p : parts)
    RRT_CHECK(p.at(0) == heads * m.dh(), "row layout", "a parameter of ", p.at(0), " rows is not ",
              heads, " heads of ", m.dh(),
              " rows (an internal error: q, k and v fused per head need one kv head per head)");
  return heads;
}

}  // namespace

const FamilyDescriptor& family_descriptor(Family f) {
  for (const FamilyDescriptor& d : families())
    if (d.family == f) return d;
  RRT_FAIL("model.family", "no descriptor for family ", static_cast<int>(f),
           " (an internal error: add it to model/families.cpp)");
}

std::string known_hf_families() {
  std::string s;
  for (const FamilyDescriptor& d : families())
    s += (s.empty() ? "" : ", ") + std::string(d.name) + " (" + d.hf.architecture +
         ", model_type " + d.hf.model_type + ")";
  return s;
}

std::string known_gguf_architectures() {
  std::string s;
  for (const FamilyDescriptor& d : families())
    if (d.gguf) s += (s.empty() ? "" : ", ") + std::string(d.gguf->architecture);
  return s;
}

const FamilyDescriptor& family_by_hf_architecture(const std::string& architecture,
                                                  const std::string& where) {
  for (const FamilyDescriptor& d : families())
    if (architecture == d.hf.architecture) return d;
  RRT_FAIL(where, "architecture ", architecture,
           " is not supported; supported families: ", known_hf_families());
}

const FamilyDescriptor& family_by_hf_model_type(const std::string& model_type,
                                                const std::string& where) {
  for (const FamilyDescriptor& d : families())
    if (model_type == d.hf.model_type) return d;
  RRT_FAIL(where, "model_type '", model_type,
           "' is not supported; supported families: ", known_hf_families());
}

const FamilyDescriptor& family_by_gguf_architecture(const std::string& architecture,
                                                    const std::string& where) {
  for (const FamilyDescriptor& d : families())
    if (d.gguf && architecture == d.gguf->architecture) return d;
  RRT_FAIL(where, "architecture '", architecture,
           "' is not supported; supported: ", known_gguf_architectures());
}

std::vector<FileTensor> expand_tensors(std::span<const TensorRule> rules, const ParamRegistry& reg,
                                       int64_t layers, const std::string& format) {
  std::vector<FileTensor> out;
  std::map<std::string, std::string> held_by;  // parameter -> tensor
  for (const TensorRule& rule : rules) {
    const bool per_layer = layer_count(rule.rrt, 2) == 2;
    for (int64_t l = 0; l < layer_count(rule.rrt, layers); ++l) {
      const std::string name = expand_layer(rule.rrt, l);
      if (!reg.has(name)) continue;
      FileTensor t{&rule, per_layer ? l : -1, expand_layer(rule.file, l),
                   rule.alias ? expand_layer(rule.alias, l) : "",
                   rule.rows == RowLayout::qkv_per_head ? qkv_names(name, l, format)
                                                        : std::vector<std::string>{name}};
      for (const std::string& p : t.params) {
        RRT_CHECK(reg.has(p), format, "tensor '", t.file, "' holds '", p,
                  "', which the model does not have (an internal error: fix model/families.cpp)");
        const auto [at, fresh] = held_by.emplace(p, t.file);
        RRT_CHECK(fresh, format, "parameter '", p, "' is held by both '", at->second, "' and '",
                  t.file, "' (an internal error: fix model/families.cpp)");
      }
      out.push_back(std::move(t));
    }
  }
  // Layer by layer, as checkpoints are written: the tensors without a layer that the table
  // lists before the first per-layer rule (the embedding) first, the others (final norm, head)
  // last.
  const auto first_per_layer =
      std::find_if(rules.begin(), rules.end(),
                   [](const TensorRule& r) { return layer_count(r.rrt, 2) == 2; }) -
      rules.begin();
  auto rank = [&](const FileTensor& t) {
    if (t.layer >= 0) return t.layer;
    return t.rule - rules.data() < first_per_layer ? int64_t{-1} : layers;
  };
  std::stable_sort(out.begin(), out.end(),
                   [&](const FileTensor& a, const FileTensor& b) { return rank(a) < rank(b); });
  for (const ParamInfo& p : reg.params())
    RRT_CHECK(held_by.count(p.name), format, "no tensor is known for parameter '", p.name,
              "' (an internal error: extend the ", format, " table in model/families.cpp)");
  return out;
}

std::set<std::string> optional_tensors(std::span<const OptionalTensor> rules, int64_t layers,
                                       bool tied_head) {
  std::set<std::string> names;
  for (const OptionalTensor& rule : rules) {
    if (rule.only_when_tied && !tied_head) continue;
    for (int64_t l = 0; l < layer_count(rule.file, layers); ++l)
      names.insert(expand_layer(rule.file, l));
  }
  return names;
}

std::string file_name_of(std::span<const TensorRule> rules, const std::string& rrt) {
  for (const TensorRule& rule : rules)
    if (rrt == rule.rrt) return rule.file;
  return "";
}

bool is_norm_weight(const TensorRule& r) {
  return std::string_view(r.rrt).ends_with("norm.weight");
}

int64_t tensors_per_layer(std::span<const TensorRule> rules) {
  return std::count_if(rules.begin(), rules.end(),
                       [](const TensorRule& r) { return layer_count(r.rrt, 2) == 2; });
}

std::vector<int64_t> file_shape(const FileTensor& t,
                                const std::vector<std::vector<int64_t>>& parts) {
  std::vector<int64_t> shape = parts.at(0);
  if (t.rule->rows == RowLayout::qkv_per_head) {
    shape[0] = 0;
    for (const auto& p : parts) shape[0] += p.at(0);
  }
  return shape;
}

void unpack_rows(RowLayout rows, const ModelConfig& m, const float* file,
                 const std::vector<std::vector<int64_t>>& parts, const std::vector<float*>& out) {
  if (rows == RowLayout::as_is) {
    std::copy_n(file, numel(parts.at(0)), out.at(0));
    return;
  }
  const int64_t heads = heads_of(rows, m, parts), dh = m.dh();
  const int64_t cols = rows_cols(parts[0]).second;
  if (rows == RowLayout::qkv_per_head) {
    const int64_t block = dh * cols;
    for (int64_t h = 0; h < heads; ++h)
      for (size_t j = 0; j < 3; ++j)
        std::copy_n(file + (h * 3 + static_cast<int64_t>(j)) * block, block, out[j] + h * block);
    return;
  }
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t r = 0; r < dh; ++r)
      std::copy_n(file + (h * dh + rope_pair_row(r, dh)) * cols, cols,
                  out[0] + (h * dh + r) * cols);
}

std::vector<float> pack_rows(RowLayout rows, const ModelConfig& m,
                             const std::vector<std::vector<int64_t>>& parts,
                             const std::vector<const float*>& in) {
  if (rows == RowLayout::as_is) return {in.at(0), in.at(0) + numel(parts.at(0))};
  const int64_t heads = heads_of(rows, m, parts), dh = m.dh();
  const int64_t cols = rows_cols(parts[0]).second;
  int64_t total = 0;
  for (const auto& p : parts) total += numel(p);
  std::vector<float> file(static_cast<size_t>(total));
  if (rows == RowLayout::qkv_per_head) {
    const int64_t block = dh * cols;
    for (int64_t h = 0; h < heads; ++h)
      for (size_t j = 0; j < 3; ++j)
        std::copy_n(in[j] + h * block, block,
                    file.data() + (h * 3 + static_cast<int64_t>(j)) * block);
    return file;
  }
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t r = 0; r < dh; ++r)
      std::copy_n(in[0] + (h * dh + r) * cols, cols,
                  file.data() + (h * dh + rope_pair_row(r, dh)) * cols);
  return file;
}

}  // namespace rrt
