#include "model/unrolled_tensors.h"

#include <algorithm>
#include <set>

#include "core/dtype.h"
#include "core/error.h"

namespace rrt {
namespace {

// The tensors of the exported file: parameters written as they are (no copy) or computed ones
// (merged or fused) owned here. Records which rrt parameters were written, so that a layout
// table missing one fails loudly instead of exporting a model without it.
class ExportTensors {
 public:
  ExportTensors(const ParameterSet& params, std::vector<UnrolledTensor>& out,
                std::deque<std::vector<float>>& owned)
      : params_(params), out_(out), owned_(owned) {}

  void add_param(const std::string& hf, const std::string& rrt_name) {
    const int i = params_.registry().index(rrt_name);
    const Shape& s = params_.registry()[i].shape;
    out_.push_back({hf, s.vec(), params_.value(i), nullptr});
    written_.insert(rrt_name);
  }
  void add_computed(const std::string& hf, std::vector<int64_t> shape, std::vector<float> data,
                    const std::vector<std::string>& from) {
    owned_.push_back(std::move(data));
    out_.push_back({hf, std::move(shape), owned_.back().data(), nullptr});
    written_.insert(from.begin(), from.end());
  }
  void check_all_written(const std::string& format) const {
    for (const ParamInfo& p : params_.registry().params()) {
      if (p.kind == ParamKind::lora_a || p.kind == ParamKind::lora_b) continue;  // merged
      RRT_CHECK(written_.count(p.name), "export", "parameter '", p.name, "' has no ", format,
                " tensor (an internal error: extend its family's table in model/families.cpp)");
    }
  }

 private:
  const ParameterSet& params_;
  std::vector<UnrolledTensor>& out_;
  std::deque<std::vector<float>>& owned_;
  std::set<std::string> written_;
};

// Where plain-model parameter `name` (of layer l of the plain model; -1: not a layer's) comes
// from in the recursive model: the tied block weight (with the position's LoRA merged when it
// has one), the tied or per-loop norm or bias, or the same name outside the layers.
struct Source {
  std::string param;
  bool merge = false;  // merged_weight(proj) rather than the parameter itself
  Proj proj = Proj::q;
};

Source source_of(const ModelSpec& spec, const std::string& name, int64_t l) {
  if (l < 0) return {name};
  const RecursionConfig& rc = spec.recursion;
  const Position pos = position_of(rc, l);
  for (int j = 0; j < kNumProj; ++j) {
    const Proj p = static_cast<Proj>(j);
    if (name == ParamRegistry::block_name(l, p))
      return {ParamRegistry::block_name(pos.layer, p), spec.lora_rank(p) > 0, p};
    if (name == ParamRegistry::bias_name(l, p))
      return {ParamRegistry::bias_name(pos.layer, p, pos.loop, rc.per_loop_norms)};
  }
  for (bool attn : {true, false})
    for (bool bias : {false, true})
      if (name == ParamRegistry::norm_name(l, -1, attn, false, bias))
        return {ParamRegistry::norm_name(pos.layer, pos.loop, attn, rc.per_loop_norms, bias)};
  for (bool q : {true, false})
    if (name == ParamRegistry::qk_norm_name(l, -1, q, false))
      return {ParamRegistry::qk_norm_name(pos.layer, pos.loop, q, rc.per_loop_norms)};
  for (bool attn : {true, false})
    if (name == ParamRegistry::post_norm_name(l, -1, attn, false))
      return {ParamRegistry::post_norm_name(pos.layer, pos.loop, attn, rc.per_loop_norms)};
  RRT_FAIL("export", "no source is known for '", name,
           "' (an internal error: extend source_of in model/unrolled_tensors.cpp)");
}

// Adds the HF tensor `t` of the plain model: the parameter itself where it is one parameter
// stored as it is, else its rows assembled from the (merged) sources.
void add_tensor(ExportTensors& out, const ModelSpec& spec, const ParameterSet& params,
                const ParamRegistry& plain, const FileTensor& t) {
  std::vector<Source> sources;
  std::vector<std::vector<int64_t>> parts;
  std::vector<std::string> from;
  for (const std::string& p : t.params) {
    sources.push_back(source_of(spec, p, t.layer));
    parts.push_back(plain[plain.index(p)].shape.vec());
    from.push_back(sources.back().param);
  }
  if (t.rule->rows == RowLayout::as_is && !sources[0].merge) {
    out.add_param(t.file, sources[0].param);
    return;
  }
  std::vector<std::vector<float>> merged(sources.size());
  std::vector<const float*> in;
  for (size_t j = 0; j < sources.size(); ++j) {
    if (sources[j].merge) {
      merged[j] = merged_weight(spec, params, t.layer, sources[j].proj);
      in.push_back(merged[j].data());
    } else {
      in.push_back(params.value(sources[j].param));
    }
  }
  std::vector<float> rows = t.rule->rows == RowLayout::as_is
                                ? std::move(merged[0])
                                : pack_rows(t.rule->rows, spec.model, parts, in);
  out.add_computed(t.file, file_shape(t, parts), std::move(rows), from);
}

}  // namespace

int64_t UnrolledTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

ModelSpec unrolled_spec(const ModelSpec& spec) {
  ModelSpec plain;
  plain.model = spec.model;
  plain.model.n_layers = spec.positions();
  plain.recursion.block_layers = spec.positions();
  plain.recursion.loops = 1;
  return plain;
}

UnrolledTensors::UnrolledTensors(const ModelSpec& spec, const ParameterSet& params,
                                 std::span<const TensorRule> table, const std::string& format) {
  const ParamRegistry plain(unrolled_spec(spec));
  ExportTensors out(params, tensors_, owned_);
  for (const FileTensor& t : expand_tensors(table, plain, spec.positions(), format)) {
    add_tensor(out, spec, params, plain, t);
    tensors_.back().rule = t.rule;
  }
  out.check_all_written(format);
}

std::vector<float> merged_weight(const ModelSpec& spec, const ParameterSet& params, int64_t l,
                                 Proj p) {
  const ParamRegistry& reg = params.registry();
  const Position pos = position_of(spec.recursion, l);
  const auto [rows, cols] = proj_shape(spec.model, p);
  const float* W = params.value(ParamRegistry::block_name(pos.layer, p));
  std::vector<float> out(W, W + rows * cols);
  const int64_t r = spec.lora_rank(p);
  if (r == 0) return out;
  const std::string a_name = ParamRegistry::lora_name(pos.loop, pos.layer, p, true);
  const std::string b_name = ParamRegistry::lora_name(pos.loop, pos.layer, p, false);
  RRT_CHECK(reg.has(a_name) && reg.has(b_name), "export", "the model has LoRA rank ", r,
            " but no parameters ", a_name, " / ", b_name);
  const float* A = params.value(a_name);  // [r, cols]
  const float* B = params.value(b_name);  // [rows, r]
  const double s = spec.lora_scale(p);
#pragma omp parallel
  {
    std::vector<double> acc(cols);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < rows; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < r; ++j) {
        const double bj = B[o * r + j];
        const float* a = A + j * cols;
        for (int64_t i = 0; i < cols; ++i) acc[i] += bj * a[i];
      }
      float* w = out.data() + o * cols;
      for (int64_t i = 0; i < cols; ++i)
        w[i] = static_cast<float>(static_cast<double>(w[i]) + s * acc[i]);
    }
  }
  return out;
}

std::vector<uint16_t> to_bf16_bits(const float* data, int64_t n) {
  std::vector<uint16_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = bf16::from_float(data[i]).bits;
  return out;
}

}  // namespace rrt
