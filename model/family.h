// One descriptor per model family (Llama, Gemma 1, GPT-NeoX): what rrt computes for it and how
// its checkpoints spell it. HF import (hf_import), HF export (hf_export), GGUF import
// (gguf_import) and the structural defaults (apply_family_defaults, check_family_structure) are
// loops over these tables; none of them names a family's tensor or config key. Adding a family
// is one descriptor in model/families.cpp (plus its Family value and tests): see
// docs/architecture.md, "Where changes go".
//
// Tensor tables name each checkpoint tensor once, beside the rrt registry name of the PLAIN
// model (B = L, K = 1, no LoRA) that it holds; "{l}" stands for the layer index. Import expands
// them over the layers and fills the plain model's registry; export expands them over the
// unrolled positions and finds each name's source in the recursive model (tied block weight with
// the position's LoRA merged, tied or per-loop norm and bias).
#pragma once

#include <array>
#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"

namespace rrt {

class ParamRegistry;

// ---- What rrt computes ----------------------------------------------------------------------
// The structural fields of ModelConfig for the family (apply_family_defaults copies them).
struct FamilyStructure {
  Norm norm;
  bool norm_unit_offset;       // RMSNorm scales by (1 + w)
  Activation activation;       // the default; HfFormat::activation lists every one the family has
  bool parallel_residual;      // the default; HfFormat::parallel_residual_key says if it may vary
  double rotary_fraction;      // the default; HfFormat::rotary_fraction_key says if it may vary
  bool linear_bias;            // every projection has a bias
  bool qkv_bias = false;       // q, k and v have a bias, no other projection (Qwen2)
  bool qk_norm = false;        // RMSNorm over each head of q and k before RoPE (Qwen3, Gemma 3)
  bool sandwich_norm = false;  // norms on the attention and MLP outputs too (Gemma 2 / 3)
  bool tied_head;              // the default
  double embed_scale;          // 0: sqrt(d_model)
};

// ---- Checkpoint tensors ---------------------------------------------------------------------
// How a checkpoint tensor's rows relate to the rrt parameter(s) it holds. Every layout keeps
// rrt's [out, in] order within a row; a family that stores [in, out] would add one here.
enum class RowLayout {
  as_is,
  // q, k and v in one tensor, per head: rows [h*3*Dh, +Dh) are q of head h, the next Dh rows k,
  // the next Dh rows v (NeoX's query_key_value, weight and bias). Needs one kv head per head.
  qkv_per_head,
  // llama.cpp's order for its adjacent-pair RoPE (convert_hf_to_gguf.py): within each head of
  // Dh rows, rrt row j * Dh/2 + i (half j of rotate_half, i < Dh/2) is stored as row 2i + j;
  // over the query heads (rope_pairs_q) or the kv heads (rope_pairs_k).
  rope_pairs_q,
  rope_pairs_k,
};

struct TensorRule {
  const char* rrt;   // registry name in the plain model; qkv_per_head: q's (k and v follow)
  const char* file;  // the checkpoint's name
  RowLayout rows = RowLayout::as_is;
  const char* alias = nullptr;  // another spelling import accepts (export writes `file`)
};

// Tensors a checkpoint may carry that hold nothing rrt needs (old RoPE / mask buffers, a tied
// head stored anyway); import ignores them, as transformers and llama.cpp do.
struct OptionalTensor {
  const char* file;
  bool only_when_tied = false;
};

// A tensor whose presence means a feature rrt lacks; import refuses it with `why`.
struct RefusedTensor {
  const char* file;
  const char* why;
};

// ---- Hugging Face config.json and weights -----------------------------------------------------
struct HfActivation {
  const char* hf;  // hidden_act value; the first one of each Activation is what export writes
  Activation activation;
};

struct HfActivationKey {
  const char* key = nullptr;       // nullptr: the family has no such key
  const char* fallback = nullptr;  // transformers' value when the key is absent (nullptr: none)
  std::span<const HfActivation> accepted;
  const char* hint = "";  // appended to the refusal
};

// A boolean config key rrt's layer fixes. An absent key means transformers' default, which is
// `required` for every family so far.
struct HfFlag {
  const char* key;
  bool required;
  bool written;     // export writes it
  const char* why;  // the refusal's reason
};

// A constant export writes as it is (a JSON literal).
struct HfConstant {
  const char* key;
  const char* json;
};

// A config key whose non-null value asks for something rrt does not compute (logit
// soft-capping, ...): import refuses it by name. absent_is_set: transformers' default when the
// key is absent is a value (Gemma 2's soft-capping), so an absent key is refused too; export
// writes null.
struct HfUnsupportedKey {
  const char* key;
  bool absent_is_set;
  const char* why;
};

enum class HfHeadDim {
  optional,  // head_dim when given, else d_model / n_heads
  required,  // the config must give it (transformers' default would be another model's)
  quotient,  // always d_model / n_heads; a head_dim key must agree
};

// The keys every size is read from.
struct HfSizeKeys {
  const char* vocab;
  const char* d_model;
  const char* n_heads;
  const char* ffn;
  const char* n_layers;
  const char* max_seq_len;
};

struct HfFormat {
  const char* architecture;  // architectures[0]
  const char* model_type;
  HfSizeKeys sizes;
  const char* kv_heads_key;  // nullptr: one kv head per head (no GQA)
  bool kv_heads_required;
  const char* head_dim_key;
  HfHeadDim head_dim;
  const char* norm_eps_key;
  double norm_eps_default;
  const char* rope_theta_key;         // the top-level spelling older configs use
  const char* rotary_fraction_key;    // nullptr: RoPE over whole heads
  const char* parallel_residual_key;  // nullptr: sequential residual only
  const char* tied_head_key;
  // Whether rope_scaling / rope_parameters may scale the frequencies (linear, dynamic, llama3:
  // transformers' rotary embedding of Llama-shaped models); else only plain RoPE imports.
  bool rope_scaling;
  HfActivationKey activation;
  // A second activation key that must agree when present (export writes it too).
  HfActivationKey activation_check;
  std::span<const HfFlag> flags;
  std::span<const HfConstant> constants;
  std::span<const TensorRule> tensors;
  std::span<const OptionalTensor> optional;
  // ---- Gemma 2 / 3 (the defaults: the family has none of it) ----
  double rope_theta_default = 10000.0;  // the base when no key gives one
  // Attention scale key^-0.5 (query_pre_attn_scalar), its value when absent.
  const char* query_scale_key = nullptr;
  double query_scale_default = 0.0;
  // Sliding-window layers: sliding_window, and layer_types or sliding_window_pattern (layer l is
  // full when (l + 1) % pattern == 0, else sliding) with this default pattern when neither is
  // given; 0: every layer is full attention (a sliding layer_types entry is refused).
  int64_t sliding_pattern_default = 0;
  // Gemma 3: the sliding layers' own RoPE base (rope_local_base_freq; transformers 5:
  // rope_parameters.sliding_attention.rope_theta), and rope_parameters keyed by layer type
  // (the full layers' scaling is rope_scaling's); nullptr: one RoPE for every layer.
  const char* rope_local_theta_key = nullptr;
  double rope_local_theta_default = 0.0;
  // Attention logit soft-capping (Gemma 2 / 3: attn_logit_softcapping; null: off), and its
  // value when the key is absent (transformers' default: Gemma 2's 50.0, Gemma 3's none);
  // nullptr: the family has none (model.attn_logit_softcapping is refused on export).
  const char* attn_softcap_key = nullptr;
  double attn_softcap_default = 0.0;
  // Final logit soft-capping (Gemma 2 / 3: final_logit_softcapping, the LM head's; null: off),
  // read and written as the attention's above (Gemma 2's absent key: 30.0; Gemma 3's: none);
  // nullptr: the family has none (model.final_logit_softcapping is refused on export).
  const char* final_softcap_key = nullptr;
  double final_softcap_default = 0.0;
  std::span<const HfUnsupportedKey> unsupported{};
};

// ---- GGUF (llama.cpp) ---------------------------------------------------------------------------
// Metadata keys are "<architecture>.<key>" with llama.cpp's generic key names (block_count,
// embedding_length, ...); the family names only the ones that differ between architectures.
struct GgufFormat {
  const char* architecture;  // general.architecture
  const char* norm_eps_key;  // e.g. attention.layer_norm_rms_epsilon
  bool whole_head_rotary;    // rope.dimension_count must be the head size
  std::span<const TensorRule> tensors;
  std::span<const OptionalTensor> optional;
  std::span<const RefusedTensor> refused;
  // llama.cpp's per-dimension RoPE frequency divisors (its converter writes Llama 3 scaling as
  // rope_freqs.weight), read back as the RoPE scaling they encode; nullptr: none.
  const char* rope_factors = nullptr;
  // ---- Gemma (the defaults: the architecture has none of it) ----
  // RMSNorm weights are stored as 1 + w: llama.cpp's RMSNorm has no unit offset, so its
  // converter adds 1 to every tensor whose name ends in "norm.weight" (is_norm_weight). Import
  // subtracts 1, export adds it.
  bool norm_plus_one = false;
  // rope.scaling.type "linear" with rope.scaling.factor: llama.cpp scales the frequencies of the
  // layers without a window (Gemma 3's global ones) by 1 / factor; else only plain RoPE or
  // rope_factors.
  bool linear_rope_scaling = false;
  // llama.cpp's fixed sliding-window pattern (it reads no per-layer list): layer l has the
  // window attention.sliding_window iff l % pattern < pattern - 1 (Gemma 2: 2, Gemma 3: 6);
  // 0: no layer has a window. sliding_window_default: the window when the key is absent (Gemma
  // 2: 4096); 0: the key is required.
  int64_t sliding_pattern = 0;
  int64_t sliding_window_default = 0;
  // The RoPE base of the windowed layers, fixed by llama.cpp whatever rope.freq_base says (Gemma
  // 3: 10000); 0: one base for every layer.
  double local_rope_theta = 0.0;
  // llama.cpp's attention scale is head_dim^-0.5 except for models of exactly this many blocks
  // (Gemma 2 / 3 27B: 46 / 62), where it is (embedding_length / head_count)^-0.5, the
  // query_pre_attn_scalar of those releases; 0: always head_dim^-0.5 (no query scale).
  int64_t wide_query_scale_blocks = 0;
  // Soft-capping keys (after "<architecture>.") and llama.cpp's value when a key is absent.
  // attn_softcap_key: the architecture always soft-caps its attention scores; nullptr: never.
  // final_softcap_key: the LM head's logits are soft-capped when the value is not 0 (Gemma 2
  // always: 30 when absent); nullptr: never.
  const char* attn_softcap_key = nullptr;
  double attn_softcap_default = 0.0;
  const char* final_softcap_key = nullptr;
  double final_softcap_default = 0.0;
};

// Whether tensor rule `r` holds a norm's weight (its rrt name ends in "norm.weight", the test
// llama.cpp's converter applies to the HF name): what GgufFormat::norm_plus_one shifts.
bool is_norm_weight(const TensorRule& r);

// ---- The descriptor ---------------------------------------------------------------------------
struct FamilyDescriptor {
  Family family;
  const char* name;     // model.family in configs and checkpoints
  const char* display;  // in messages: "rrt's GPT-NeoX ..."
  const char* mlp;      // what the MLP is, for messages
  FamilyStructure structure;
  HfFormat hf;
  const GgufFormat* gguf;  // nullptr: no GGUF import
};

// Every family, in Family order.
std::span<const FamilyDescriptor> families();
const FamilyDescriptor& family_descriptor(Family f);

// Lookups that throw rrt::Error at `where`, listing the known families, for an unknown name.
const FamilyDescriptor& family_by_hf_architecture(const std::string& architecture,
                                                  const std::string& where);
const FamilyDescriptor& family_by_hf_model_type(const std::string& model_type,
                                                const std::string& where);
const FamilyDescriptor& family_by_gguf_architecture(const std::string& architecture,
                                                    const std::string& where);
// "llama (LlamaForCausalLM, model_type llama), ...": what the lookups' errors list.
std::string known_hf_families();
// "llama": the general.architecture values GGUF import takes.
std::string known_gguf_architectures();

// ---- Expanding the tables ---------------------------------------------------------------------
// One checkpoint tensor of a concrete model: a rule at one layer (-1 for a tensor without
// "{l}"), with the plain-model parameters it holds (one; three for qkv_per_head).
struct FileTensor {
  const TensorRule* rule;
  int64_t layer;
  std::string file, alias;
  std::vector<std::string> params;
};

// The tensors of the plain model with registry `reg` and `layers` layers, layer by layer in
// table order within a layer: every rule whose rrt name(s) the registry has. Throws (naming
// `format`) unless each parameter is held by exactly one tensor: a table that misses one fails
// loudly rather than leaving it uninitialised.
std::vector<FileTensor> expand_tensors(std::span<const TensorRule> rules, const ParamRegistry& reg,
                                       int64_t layers, const std::string& format);
// The names of the optional tensors of a model of `layers` layers.
std::set<std::string> optional_tensors(std::span<const OptionalTensor> rules, int64_t layers,
                                       bool tied_head);
// The file name of the tensor holding plain-model parameter `rrt` (e.g. "head.weight"), or ""
// when no rule names it.
std::string file_name_of(std::span<const TensorRule> rules, const std::string& rrt);
// How many tensors each layer has (the rules with "{l}").
int64_t tensors_per_layer(std::span<const TensorRule> rules);

// The checkpoint shape of tensor `t` for its parameters' shapes `parts` ([rows, cols] or [rows]).
std::vector<int64_t> file_shape(const FileTensor& t,
                                const std::vector<std::vector<int64_t>>& parts);
// Checkpoint rows -> the parameters (each of its own shape in `parts`), and back. `m` gives the
// head counts and Dh of the row layouts.
void unpack_rows(RowLayout rows, const ModelConfig& m, const float* file,
                 const std::vector<std::vector<int64_t>>& parts, const std::vector<float*>& out);
std::vector<float> pack_rows(RowLayout rows, const ModelConfig& m,
                             const std::vector<std::vector<int64_t>>& parts,
                             const std::vector<const float*>& in);

}  // namespace rrt
