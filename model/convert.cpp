#include "model/convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "core/error.h"
#include "core/rng.h"
#include "model/svd.h"

namespace rrt {

namespace {

// numpy's round(linspace(0, L-1, B))[b]: y = b * step with step = (L-1)/(B-1), the last element
// set to L-1 exactly, then round half to even.
int64_t linspace_index(int64_t L, int64_t B, int64_t b) {
  if (B == 1) return 0;
  if (b == B - 1) return L - 1;
  const double step = static_cast<double>(L - 1) / static_cast<double>(B - 1);
  const double y = static_cast<double>(b) * step;
  double r = std::round(y);                                                // half away from zero
  if (std::fabs(y - std::trunc(y)) == 0.5) r = 2.0 * std::round(y / 2.0);  // ties to even
  return static_cast<int64_t>(r);
}

void check_LB(int64_t L, int64_t B) {
  RRT_CHECK(L > 0 && B > 0, "convert", "layers (", L, ") and block layers (", B,
            ") must be positive");
  RRT_CHECK(L % B == 0, "convert", "block layers ", B, " must divide the model's ", L, " layers");
}

}  // namespace

std::string to_string(InitRule r) {
  switch (r) {
    case InitRule::stepwise:
      return "stepwise";
    case InitRule::average:
      return "average";
    case InitRule::lower:
      return "lower";
    case InitRule::upper:
      return "upper";
    case InitRule::random:
      return "random";
  }
  return "?";
}

namespace {
constexpr InitRule kInitRules[] = {InitRule::stepwise, InitRule::average, InitRule::lower,
                                   InitRule::upper, InitRule::random};

// "a, b, c" (last_sep ", ") or "a, b or c" (last_sep " or "), so messages follow the tables.
std::string list_names(const std::vector<std::string>& names, const char* last_sep) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i)
    s += (i == 0 ? "" : i + 1 == names.size() ? last_sep : ", ") + names[i];
  return s;
}
}  // namespace

const std::vector<std::string>& init_rule_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (InitRule r : kInitRules) n.push_back(to_string(r));
    return n;
  }();
  return names;
}

std::string init_rule_choices() { return list_names(init_rule_names(), ", "); }

InitRule parse_init_rule(const std::string& name) {
  for (InitRule r : kInitRules)
    if (to_string(r) == name) return r;
  RRT_FAIL("convert", "unknown init rule '", name, "'; expected one of ", init_rule_choices());
}

std::vector<int64_t> tied_group(int64_t L, int64_t B, Sharing sharing, int64_t b) {
  check_LB(L, B);
  RRT_CHECK(b >= 0 && b < B, "convert", "block layer ", b, " out of range [0, ", B, ")");
  const int64_t K = L / B;
  std::vector<int64_t> g;
  for (int64_t k = 0; k < K; ++k) g.push_back(sharing == Sharing::cycle ? b + k * B : b * K + k);
  return g;
}

std::vector<std::vector<int64_t>> init_sources(int64_t L, int64_t B, Sharing sharing, InitRule rule,
                                               uint64_t seed) {
  check_LB(L, B);
  const int64_t K = L / B;
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> g = tied_group(L, B, sharing, b);
    switch (rule) {
      case InitRule::stepwise:
        out[b] = {linspace_index(L, B, b)};
        break;
      case InitRule::average:
        out[b] = g;
        break;
      case InitRule::lower:
        out[b] = {g.front()};
        break;
      case InitRule::upper:
        out[b] = {g.back()};
        break;
      case InitRule::random: {
        CounterRng rng(seed, static_cast<uint64_t>(b));
        out[b] = {g[rng.below(0, static_cast<uint32_t>(K))]};
        break;
      }
    }
  }
  return out;
}

namespace {

// dst = mean over sources of src(layer), summed in double in source order.
template <typename Src>
void mean_into(float* dst, int64_t n, const std::vector<int64_t>& sources, Src src) {
  if (sources.size() == 1) {
    std::memcpy(dst, src(sources[0]), static_cast<size_t>(n) * sizeof(float));
    return;
  }
  std::vector<double> acc(static_cast<size_t>(n), 0.0);
  for (int64_t l : sources) {
    const float* x = src(l);
    for (int64_t i = 0; i < n; ++i) acc[i] += x[i];
  }
  const double inv = static_cast<double>(sources.size());
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(acc[i] / inv);
}

void copy_param(const ParameterSet& from, ParameterSet& to, const std::string& name) {
  const int i = from.registry().index(name), j = to.registry().index(name);
  RRT_CHECK(from.numel(i) == to.numel(j), "convert", "tensor '", name, "' changes size");
  std::memcpy(to.value(j), from.value(i), static_cast<size_t>(from.numel(i)) * sizeof(float));
}

// B [rows, r] = U S and A [r, cols] = V^T from truncated_svd become B = U (S / s)^(1/2) and
// A = (S / s)^(1/2) V^T: column i of B has norm S_i (U's columns are orthonormal), so no
// singular values need asking for (which would keep the SVD off its randomized fast path).
void balance_singular_values(float* B, float* A, int64_t rows, int64_t cols, int64_t r, double s) {
  for (int64_t i = 0; i < r; ++i) {
    double sq = 0;
    for (int64_t a = 0; a < rows; ++a) sq += static_cast<double>(B[a * r + i]) * B[a * r + i];
    const double sigma = std::sqrt(sq);
    if (sigma == 0) continue;  // a zero singular value: B's column is zero, the product too
    const double to_b = 1.0 / std::sqrt(sigma * s), to_a = std::sqrt(sigma / s);
    for (int64_t a = 0; a < rows; ++a) B[a * r + i] = static_cast<float>(B[a * r + i] * to_b);
    for (int64_t c = 0; c < cols; ++c) A[i * cols + c] = static_cast<float>(A[i * cols + c] * to_a);
  }
}

}  // namespace

const std::vector<std::string>& lora_init_names() {
  static const std::vector<std::string> names = {"svd", "svd_balanced", "zero"};
  return names;
}

std::string lora_init_choices() { return list_names(lora_init_names(), " or "); }

LoraInit parse_lora_init(const std::string& name) {
  if (name == "svd") return LoraInit::svd;
  if (name == "svd_balanced") return LoraInit::svd_balanced;
  if (name == "zero") return LoraInit::zero;
  RRT_FAIL("convert", "unknown LoRA init '", name, "'; expected ", lora_init_choices());
}

Converted convert_to_recursive(const ModelSpec& original_spec, const ParameterSet& original,
                               const ConvertOptions& options) {
  validate(original_spec);
  const RecursionConfig& orec = original_spec.recursion;
  RRT_CHECK(orec.loops == 1, "convert", "the original model must be plain (loops = 1), got ",
            orec.loops, " loops");
  RRT_CHECK(!orec.per_loop_norms, "convert", "the original model must not have per-loop norms");
  for (int p = 0; p < kNumProj; ++p)
    RRT_CHECK(original_spec.lora_rank(static_cast<Proj>(p)) == 0, "convert",
              "the original model must have no LoRA (rank of ", kProjNames[p], " is ",
              original_spec.lora_rank(static_cast<Proj>(p)), ")");
  // The parameters must be laid out as the spec says (shapes are read through raw pointers).
  const ParamRegistry expected(original_spec);
  for (const ParamInfo& info : expected.params()) {
    RRT_CHECK(original.registry().has(info.name), "convert", "the original parameters lack '",
              info.name, "'; do they belong to this spec?");
    const ParamInfo& have = original.registry()[original.registry().index(info.name)];
    RRT_CHECK(have.shape == info.shape, "convert", "'", info.name, "' has shape ", have.shape.str(),
              " but the spec says ", info.shape.str());
  }
  const int64_t L = orec.block_layers;
  const int64_t K = options.loops;
  RRT_CHECK(K > 0, "convert.loops", "loops must be positive, got ", K);
  RRT_CHECK(L % K == 0, "convert.loops", "loops ", K, " must divide the model's ", L, " layers");
  const int64_t B = L / K;
  const ModelConfig& m = original_spec.model;
  RRT_CHECK(options.rank_attention >= 0 && options.rank_mlp >= 0, "convert.rank",
            "LoRA ranks must be >= 0");

  Converted result;
  ModelSpec& spec = result.spec;
  spec.model = m;
  spec.model.n_layers = L;
  spec.recursion.block_layers = B;
  spec.recursion.loops = K;
  spec.recursion.sharing = options.sharing;
  spec.recursion.per_loop_norms = options.per_loop_norms;
  spec.lora = LoraConfig{};
  spec.lora.rank_attention = options.rank_attention;
  spec.lora.rank_mlp = options.rank_mlp;
  spec.lora.alpha = 0.0;
  result.params = std::make_unique<ParameterSet>(spec, ParameterSet::Grads::without);
  ParameterSet& out = *result.params;

  // Embedding, final norm, head.
  const bool norm_bias = m.norm == Norm::layer;
  copy_param(original, out, "embed.weight");
  copy_param(original, out, "final_norm.weight");
  if (norm_bias) copy_param(original, out, "final_norm.bias");
  if (!m.tied_head) copy_param(original, out, "head.weight");

  // Tied block: every tensor of block layer b is the rule's mean over its source layers, named
  // by `name_of(layer)` in both models.
  const auto sources = init_sources(L, B, options.sharing, options.init, options.seed);
  bool svd = false;  // any position gets truncated SVDs: the long part, reported per position
  for (int p = 0; p < kNumProj; ++p)
    svd |= options.lora_init != LoraInit::zero && m.has_proj(static_cast<Proj>(p)) &&
           spec.lora_rank(static_cast<Proj>(p)) > 0;
  const int64_t total = B + (svd ? L : 0);
  int64_t done = 0;
  auto report = [&](const std::function<std::string()>& what) {
    if (options.progress) options.progress(++done, total, what());
  };
  auto tie = [&](int64_t b, const std::function<std::string(int64_t)>& name_of) {
    const int j = out.registry().index(name_of(b));
    mean_into(out.value(j), out.numel(j), sources[b],
              [&](int64_t l) -> const float* { return original.value(name_of(l)); });
  };
  for (int64_t b = 0; b < B; ++b) {
    for (int p = 0; p < kNumProj; ++p) {
      const Proj proj = static_cast<Proj>(p);
      if (!m.has_proj(proj)) continue;
      tie(b, [proj](int64_t l) { return ParamRegistry::block_name(l, proj); });
      if (m.has_bias(proj) && !options.per_loop_norms)
        tie(b, [proj](int64_t l) { return ParamRegistry::bias_name(l, proj); });
    }
    if (!options.per_loop_norms) {
      for (bool attn : {true, false})
        for (bool bias : {false, true})
          if (!bias || norm_bias)
            tie(b, [attn, bias](int64_t l) {
              return ParamRegistry::norm_name(l, -1, attn, false, bias);
            });
      for (bool q : {true, false})
        if (m.qk_norm)
          tie(b, [q](int64_t l) { return ParamRegistry::qk_norm_name(l, -1, q, false); });
      for (bool attn : {true, false})
        if (m.sandwich_norm)
          tie(b, [attn](int64_t l) { return ParamRegistry::post_norm_name(l, -1, attn, false); });
    }
    report([&] {
      std::string layers;
      for (int64_t l : sources[b]) {
        if (!layers.empty()) layers += ", ";
        layers += std::to_string(l);
      }
      return "block layer " + std::to_string(b) +
             (sources[b].size() > 1 ? ": mean of layers " : " from layer ") + layers;
    });
  }

  // Per-position parameters: norms (per loop) and LoRA.
  for (int64_t l = 0; l < L; ++l) {
    const Position pos = position_of(spec.recursion, l);
    if (options.per_loop_norms) {
      for (bool attn : {true, false})
        for (bool bias : {false, true}) {
          if (bias && !norm_bias) continue;
          const int j =
              out.registry().index(ParamRegistry::norm_name(pos.layer, pos.loop, attn, true, bias));
          std::memcpy(out.value(j),
                      original.value(ParamRegistry::norm_name(l, -1, attn, false, bias)),
                      static_cast<size_t>(out.numel(j)) * sizeof(float));
        }
      auto copy = [&](const std::string& to, const std::string& from) {
        const int j = out.registry().index(to);
        std::memcpy(out.value(j), original.value(from),
                    static_cast<size_t>(out.numel(j)) * sizeof(float));
      };
      for (bool q : {true, false})
        if (m.qk_norm)
          copy(ParamRegistry::qk_norm_name(pos.layer, pos.loop, q, true),
               ParamRegistry::qk_norm_name(l, -1, q, false));
      for (bool attn : {true, false})
        if (m.sandwich_norm)
          copy(ParamRegistry::post_norm_name(pos.layer, pos.loop, attn, true),
               ParamRegistry::post_norm_name(l, -1, attn, false));
      for (int p = 0; p < kNumProj; ++p) {
        const Proj proj = static_cast<Proj>(p);
        if (!m.has_bias(proj)) continue;
        const int j =
            out.registry().index(ParamRegistry::bias_name(pos.layer, proj, pos.loop, true));
        std::memcpy(out.value(j), original.value(ParamRegistry::bias_name(l, proj)),
                    static_cast<size_t>(out.numel(j)) * sizeof(float));
      }
    }
    for (int p = 0; p < kNumProj; ++p) {
      const Proj proj = static_cast<Proj>(p);
      const int64_t r = spec.lora_rank(proj);
      if (r == 0) continue;
      auto [rows, cols] = proj_shape(m, proj);
      const int ia =
          out.registry().index(ParamRegistry::lora_name(pos.loop, pos.layer, proj, true));
      const int ib =
          out.registry().index(ParamRegistry::lora_name(pos.loop, pos.layer, proj, false));
      float* A = out.value(ia);   // [r, in]
      float* Bm = out.value(ib);  // [out, r]
      if (options.lora_init == LoraInit::zero) {
        fill_normal(A, r * cols, 0.0, 1.0 / std::sqrt(static_cast<double>(cols)), options.seed,
                    static_cast<uint64_t>(ia));
        std::fill(Bm, Bm + rows * r, 0.0f);
        continue;
      }
      // R = W_l - W'_b, in double.
      const float* Wl = original.value(ParamRegistry::block_name(l, proj));
      const float* Wb = out.value(ParamRegistry::block_name(pos.layer, proj));
      std::vector<double> R(static_cast<size_t>(rows * cols));
      for (int64_t i = 0; i < rows * cols; ++i)
        R[i] = static_cast<double>(Wl[i]) - static_cast<double>(Wb[i]);
      truncated_svd(R.data(), rows, cols, r, Bm, A);
      const double s = spec.lora_scale(proj);
      if (options.lora_init == LoraInit::svd_balanced) {
        balance_singular_values(Bm, A, rows, cols, r, s);
      } else if (s != 1.0) {
        for (int64_t i = 0; i < rows * r; ++i) Bm[i] = static_cast<float>(Bm[i] / s);
      }
    }
    if (svd)
      report([&] {
        return "LoRA SVD of layer " + std::to_string(l) + ": block layer " +
               std::to_string(pos.layer) + ", loop " + std::to_string(pos.loop + 1);
      });
  }
  return result;
}

}  // namespace rrt
