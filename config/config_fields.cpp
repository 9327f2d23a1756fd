#include "config/config_fields.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "config/config_sources.h"
#include "config/objective.h"
#include "config/resume_check.h"
#include "core/error.h"

namespace rrt {

namespace {

template <typename T>
constexpr FieldType type_of() {
  if constexpr (std::is_same_v<T, int64_t>) return FieldType::integer;
  if constexpr (std::is_same_v<T, uint64_t>) return FieldType::unsigned_integer;
  if constexpr (std::is_same_v<T, double>) return FieldType::number;
  if constexpr (std::is_same_v<T, bool>) return FieldType::boolean;
  if constexpr (std::is_same_v<T, std::string>) return FieldType::string;
  if constexpr (std::is_same_v<T, std::vector<std::string>>) return FieldType::list;
  if constexpr (std::is_same_v<T, std::vector<MixtureSource>>) return FieldType::sources;
}

// A field stored as a plain member.
template <typename T>
Field field(const char* name, T& member, const char* doc) {
  Field f;
  f.name = name;
  f.type = type_of<T>();
  f.doc = doc;
  f.get = [&member] { return FieldValue(member); };
  f.set = [&member](const FieldValue& v) { member = std::get<T>(v); };
  return f;
}

// A string member restricted to a few values.
Field choice(const char* name, std::string& member, std::vector<std::string> values,
             const char* doc) {
  Field f = field(name, member, doc);
  f.type = FieldType::choice;
  f.choices = std::move(values);
  return f;
}

// An enum member, spelled in YAML by the names in `names`.
template <typename E>
Field choice(const char* name, E& member, std::vector<std::pair<std::string, E>> names,
             const char* doc) {
  Field f;
  f.name = name;
  f.type = FieldType::choice;
  f.doc = doc;
  for (const auto& [text, value] : names) f.choices.push_back(text);
  f.get = [&member, names] {
    for (const auto& [text, value] : names)
      if (value == member) return FieldValue(text);
    return FieldValue(std::string("?"));
  };
  f.set = [&member, names, key = std::string(name)](const FieldValue& v) {
    for (const auto& [text, value] : names)
      if (text == std::get<std::string>(v)) {
        member = value;
        return;
      }
    RRT_FAIL(key, "unknown value '", std::get<std::string>(v), "'");
  };
  return f;
}

// ---- One field list per struct -----------------------------------------------------------------

// Setting the family resets the structural fields to that family's (apply_family_defaults);
// model_fields lists it first, so the keys after it refine the family's defaults.
Field family_field(ModelConfig& m) {
  Field f = choice("family", m.family,
                   {{"llama", Family::llama},
                    {"gemma", Family::gemma},
                    {"neox", Family::neox},
                    {"qwen2", Family::qwen2},
                    {"qwen3", Family::qwen3},
                    {"gemma3", Family::gemma3},
                    {"gemma2", Family::gemma2}},
                   "architecture family: llama, gemma, neox, qwen2, qwen3, gemma3 or gemma2; sets "
                   "the family's norm, "
                   "activation, biases, residual, rotary fraction, embedding scale and tied head, "
                   "which the keys after it may refine");
  const auto set_enum = f.set;
  f.set = [&m, set_enum](const FieldValue& v) {
    set_enum(v);
    apply_family_defaults(m, m.family);
  };
  return f.also_called({"model_type", "arch", "architecture"});
}

// HF's layer_types: one "sliding_attention" / "full_attention" per layer, kept as the repeating
// pattern ModelConfig::sliding_layers (config.h).
Field layer_types_field(ModelConfig& m) {
  Field f;
  f.name = "layer_types";
  f.type = FieldType::list;
  f.doc =
      "which layers use model.sliding_window: sliding_attention or full_attention per unrolled "
      "position, repeated over the depth when shorter (Gemma 2: [sliding_attention, "
      "full_attention]); empty: every layer when a window is set";
  f.choices = {"sliding_attention", "full_attention"};
  // A pattern repeats its items (the list check refuses repeats unless told otherwise).
  f.check_items = [](const std::vector<std::string>& items) -> std::string {
    for (const std::string& item : items)
      if (item != "sliding_attention" && item != "full_attention")
        return "unknown item '" + item + "'; items are sliding_attention or full_attention";
    return "";
  };
  f.get = [&m] {
    std::vector<std::string> names;
    for (bool s : m.sliding_layers) names.push_back(s ? "sliding_attention" : "full_attention");
    return FieldValue(names);
  };
  f.set = [&m](const FieldValue& v) {
    m.sliding_layers.clear();
    for (const std::string& name : std::get<std::vector<std::string>>(v))
      m.sliding_layers.push_back(name == "sliding_attention");
  };
  return f.also_called({"sliding_layers", "attention_types"});
}

std::vector<Field> model_fields(ModelConfig& m) {
  return {
      family_field(m),
      field("n_layers", m.n_layers,
            "depth L of the model (required); recursion.block_layers = n_layers / recursion.loops")
          .at_least(1)
          .also_called({"num_hidden_layers", "num_layers", "n_layer", "depth", "layers"}),
      field("vocab", m.vocab, "vocabulary size V (the byte tokenizer needs 257)")
          .at_least(1)
          .also_called({"vocab_size", "n_vocab"}),
      field("d_model", m.d_model, "hidden size D")
          .at_least(1)
          .also_called({"hidden_size", "n_embd", "dim", "d", "width"}),
      field("n_heads", m.n_heads, "attention (query) heads H")
          .at_least(1)
          .also_called({"num_attention_heads", "n_head", "heads", "num_heads"}),
      field("n_kv_heads", m.n_kv_heads,
            "key/value heads Hkv (grouped-query attention); divides n_heads")
          .at_least(1)
          .also_called({"num_key_value_heads", "kv_heads", "n_kv_head", "num_kv_heads"}),
      field("head_dim", m.head_dim, "per-head size Dh; 0: d_model / n_heads")
          .at_least(0)
          .also_called({"d_head", "head_size"}),
      field("ffn", m.ffn, "MLP hidden size F")
          .at_least(1)
          .also_called({"intermediate_size", "d_ff", "ffn_dim", "hidden_dim", "mlp_dim"}),
      field("max_seq_len", m.max_seq_len, "longest sequence the model serves (RoPE positions)")
          .at_least(1)
          .also_called({"max_position_embeddings", "n_positions", "n_ctx", "context_length"}),
      field("norm_eps", m.norm_eps, "RMSNorm epsilon")
          .above(0)
          .also_called({"rms_norm_eps", "layer_norm_eps", "eps", "epsilon"}),
      field("rope_theta", m.rope_theta, "RoPE base frequency")
          .above(0)
          .also_called({"rope_base", "rotary_base", "rotary_emb_base", "theta"}),
      choice("rope_scaling", m.rope_scaling.type,
             {{"none", ops::RopeScalingType::none},
              {"linear", ops::RopeScalingType::linear},
              {"dynamic", ops::RopeScalingType::dynamic},
              {"llama3", ops::RopeScalingType::llama3}},
             "RoPE frequency scaling as transformers computes it (Llama 3.x: llama3)")
          .also_called({"rope_type", "rope_scaling_type"}),
      field("rope_scaling_factor", m.rope_scaling.factor,
            "RoPE scaling factor (linear: positions / factor; llama3: low frequencies / factor)")
          .above(0)
          .also_called({"rope_factor"}),
      field("rope_low_freq_factor", m.rope_scaling.low_freq_factor, "llama3 RoPE: low_freq_factor")
          .above(0)
          .also_called({"low_freq_factor"}),
      field("rope_high_freq_factor", m.rope_scaling.high_freq_factor,
            "llama3 RoPE: high_freq_factor")
          .above(0)
          .also_called({"high_freq_factor"}),
      field("rope_original_max_positions", m.rope_scaling.original_max_positions,
            "llama3 and dynamic RoPE: the context length before scaling "
            "(original_max_position_embeddings)")
          .at_least(0)
          .also_called({"original_max_position_embeddings"}),
      field("rotary_fraction", m.rotary_fraction,
            "fraction of each head's dims that RoPE rotates (NeoX: 0.25)")
          .above(0)
          .at_most(1)
          .also_called({"rotary_pct", "partial_rotary_factor"}),
      field("tied_head", m.tied_head, "the LM head reuses the embedding matrix")
          .also_called({"tie_word_embeddings", "tie_embeddings", "tied_embeddings"}),
      field("parallel_residual", m.parallel_residual,
            "NeoX residual: x + attn(ln1(x)) + mlp(ln2(x))")
          .also_called({"use_parallel_residual"}),
      choice("activation", m.activation,
             {{"swiglu", Activation::swiglu},
              {"geglu", Activation::geglu},
              {"gelu", Activation::gelu},
              {"gelu_tanh", Activation::gelu_tanh}},
             "MLP activation")
          .also_called({"hidden_act", "act", "mlp_activation"}),
      choice("norm", m.norm, {{"rms", Norm::rms}, {"layer", Norm::layer}},
             "RMSNorm (llama, gemma) or LayerNorm with a bias (neox)")
          .also_called({"norm_type"}),
      field("linear_bias", m.linear_bias, "every projection has a bias (neox)")
          .also_called({"bias", "attention_bias"}),
      field("qkv_bias", m.qkv_bias, "q, k and v (only) have a bias (qwen2)"),
      field("qk_norm", m.qk_norm, "RMSNorm over each head of q and k before RoPE (qwen3)")
          .also_called({"qk_layernorm"}),
      field("norm_unit_offset", m.norm_unit_offset, "Gemma: RMSNorm scales by (1 + w)"),
      field("embed_scale", m.embed_scale, "multiplier on the embeddings; 0: sqrt(d_model) (gemma)")
          .at_least(0)
          .also_called({"embedding_multiplier", "embedding_scale"}),
      field("sliding_window", m.sliding_window,
            "local attention: a query sees only the keys less than this many positions back, "
            "on the layers model.layer_types names; 0: full causal attention")
          .at_least(0)
          .also_called({"window", "attention_window", "sliding_window_size"}),
      layer_types_field(m),
      field("attn_logit_softcapping", m.attn_logit_softcapping,
            "attention scores s become cap * tanh(s / cap) before the softmax (Gemma 2); 0: off")
          .at_least(0)
          .also_called({"attention_softcap", "attn_softcap"}),
      field("final_logit_softcapping", m.final_logit_softcapping,
            "the LM head's logits z become cap * tanh(z / cap) on every exit (Gemma 2); 0: off")
          .at_least(0)
          .also_called({"final_softcap", "logit_softcap"}),
      field("sandwich_norm", m.sandwich_norm,
            "norms on the attention and MLP outputs before each residual add (gemma2, gemma3)")
          .also_called({"post_norms", "sandwich_norms"}),
      field("query_pre_attn_scalar", m.query_pre_attn_scalar,
            "attention scale query_pre_attn_scalar^-0.5 instead of head_dim^-0.5; 0: head_dim")
          .at_least(0)
          .also_called({"attention_scale_dim"}),
      field("rope_local_theta", m.rope_local_theta,
            "RoPE base of the sliding-window positions (model.layer_types sliding_attention; "
            "Gemma 3's local layers); 0: rope_theta everywhere")
          .at_least(0)
          .also_called({"rope_local_base_freq", "local_rope_theta"}),
  };
}

std::vector<Field> recursion_fields(RecursionConfig& r) {
  Field block_layers;
  block_layers.name = "block_layers";
  block_layers.type = FieldType::integer;
  block_layers.doc = "B unique layers = model.n_layers / recursion.loops; set loops to change it";
  block_layers.role = FieldRole::derived;
  block_layers.get = [&r] { return FieldValue(r.block_layers); };
  return {
      field("loops", r.loops, "K: how many times the shared block runs; divides model.n_layers")
          .at_least(1)
          .also_called({"num_loops", "n_loops", "recursions", "num_recursions", "repeats", "k"}),
      block_layers,
      choice("sharing", r.sharing, {{"cycle", Sharing::cycle}, {"sequence", Sharing::sequence}},
             "which block layer serves unrolled position l: cycle l % B (loop after loop), "
             "sequence l / K (each layer K times in a row)")
          .also_called({"strategy", "sharing_strategy", "mode"}),
      field("per_loop_norms", r.per_loop_norms,
            "norms (and NeoX biases) per unrolled position instead of tied")
          .also_called({"untied_norms"}),
  };
}

// The names of the projections, as the YAML list spells them.
std::vector<std::string> proj_names() { return {kProjNames.begin(), kProjNames.end()}; }

std::vector<Field> lora_fields(LoraConfig& l) {
  Field rank = field("rank", l.rank_attention,
                     "shorthand: sets rank_attention and rank_mlp (0: no LoRA, plain recursive)")
                   .at_least(0)
                   .only_input()
                   .also_called({"r", "lora_rank", "lora_r"});
  rank.set = [&l](const FieldValue& v) { l.rank_attention = l.rank_mlp = std::get<int64_t>(v); };

  Field targets;
  targets.name = "targets";
  targets.type = FieldType::list;
  targets.doc = "projections that carry LoRA";
  targets.choices = proj_names();
  targets.aliases = {"target_modules", "modules", "projections"};
  targets.get = [&l] {
    std::vector<std::string> names;
    for (int p = 0; p < kNumProj; ++p)
      if (l.targets[p]) names.push_back(kProjNames[p]);
    return FieldValue(names);
  };
  targets.set = [&l](const FieldValue& v) {
    l.targets.fill(false);
    for (const std::string& name : std::get<std::vector<std::string>>(v))
      for (int p = 0; p < kNumProj; ++p)
        if (name == kProjNames[p]) l.targets[p] = true;
  };
  return {
      rank,
      field("rank_attention", l.rank_attention,
            "LoRA rank R of q, k, v, o; capped at each projection's min(in, out)")
          .at_least(0)
          .also_called({"attention_rank", "rank_attn"}),
      field("rank_mlp", l.rank_mlp,
            "LoRA rank R of gate, up, down; capped at each projection's min(in, out)")
          .at_least(0)
          .also_called({"mlp_rank", "rank_ffn"}),
      field("alpha", l.alpha, "LoRA scale is alpha / rank; 0: scale 1")
          .at_least(0)
          .also_called({"lora_alpha", "scale"}),
      targets,
  };
}

std::vector<Field> data_fields(DataConfig& d) {
  return {
      field("path", d.path, "directory of token shards written by `rrt prepare`, or one shard file")
          .also_called({"dir", "data_dir", "dataset", "train_path", "shards", "data_path"}),
      field("sources", d.sources,
            "a weighted mixture instead of path: shard sets written by `rrt prepare` with one "
            "tokenizer, drawn in proportion to their weights, each until its epochs cap "
            "(docs/data.md, \"Mixtures\")")
          .also_called({"mixture", "datasets", "blend", "train_paths", "data_paths"}),
      field("tokenizer", d.tokenizer,
            "\"byte\", the path of a SentencePiece .model file, of an HF tokenizer.json, of "
            "a GGUF file (.gguf or bpe:<path>) for its byte-level BPE tokenizer, or an HF "
            "checkpoint folder (its tokenizer.model, else its tokenizer.json)")
          .required()
          .also_called({"tokenizer_path", "spm", "sentencepiece", "vocab_file"}),
      field("val_fraction", d.val_fraction,
            "last fraction of the sequences held out for validation")
          .at_least(0)
          .below(1)
          .also_called({"val_split", "validation_fraction", "eval_fraction", "holdout"}),
      field("seed", d.seed, "shuffle seed").also_called({"shuffle_seed", "data_seed"}),
      field("document_mask", d.document_mask,
            "document-aware batches: attention does not cross an EOS within a packed sequence "
            "and RoPE positions restart after each EOS, so each document computes as if alone")
          .also_called({"document_masking", "doc_mask", "mask_documents"}),
  };
}

std::vector<Field> optim_fields(OptimConfig& o) {
  return {
      field("lr", o.lr, "peak learning rate")
          .above(0)
          .also_called({"learning_rate", "max_lr", "peak_lr"}),
      field("min_lr_ratio", o.min_lr_ratio, "the schedule ends at lr * min_lr_ratio")
          .at_least(0)
          .at_most(1)
          .also_called({"min_lr", "final_lr_ratio", "lr_min_ratio"}),
      field("beta1", o.beta1, "AdamW first-moment decay")
          .at_least(0)
          .below(1)
          .also_called({"adam_beta1", "b1"}),
      field("beta2", o.beta2, "AdamW second-moment decay")
          .at_least(0)
          .below(1)
          .also_called({"adam_beta2", "b2"}),
      field("eps", o.eps, "AdamW epsilon")
          .above(0)
          .also_called({"adam_eps", "epsilon", "adam_epsilon"}),
      field("weight_decay", o.weight_decay, "decoupled weight decay (matrices only, not norms)")
          .at_least(0)
          .also_called({"wd", "decay"}),
      field("grad_clip", o.grad_clip, "clip the global gradient norm to this; 0 disables")
          .at_least(0)
          .also_called(
              {"max_grad_norm", "clip_grad_norm", "grad_norm_clip", "clip", "gradient_clipping"}),
      choice("schedule", o.schedule, {"cosine", "constant", "wsd"},
             "learning-rate schedule after warmup: cosine decay, constant, or wsd "
             "(warmup-stable-decay)")
          .also_called({"lr_schedule", "scheduler", "lr_scheduler", "lr_decay"}),
      field("warmup_steps", o.warmup_steps, "linear warmup from 0 to lr over this many steps")
          .at_least(0)
          .also_called({"warmup", "warmup_iters", "num_warmup_steps"}),
      field("decay_fraction", o.decay_fraction,
            "wsd: fraction of the steps spent in the final decay")
          .at_least(0)
          .at_most(1)
          .also_called({"cooldown_fraction", "decay_ratio", "cooldown"}),
  };
}

std::vector<Field> train_fields(TrainConfig& t) {
  return {
      field("steps", t.steps, "optimizer steps of the whole run")
          .at_least(1)
          .also_called(
              {"max_steps", "iters", "max_iters", "num_steps", "total_steps", "train_steps"}),
      field("micro_batch", t.micro_batch, "sequences per micro-batch, per process")
          .at_least(1)
          .also_called({"batch_size", "micro_batch_size", "per_device_train_batch_size", "batch"}),
      field("grad_accum", t.grad_accum,
            "micro-batches accumulated per optimizer step; at most 100000")
          .at_least(1)
          .at_most(100000)
          .also_called(
              {"gradient_accumulation_steps", "accum_steps", "grad_accumulation", "accumulate"}),
      field("seq_len", t.seq_len, "tokens per training sequence; at most model.max_seq_len")
          .at_least(1)
          .also_called(
              {"sequence_length", "context_length", "block_size", "max_seq_len", "seq_length"}),
      field("eval_every", t.eval_every, "optimizer steps between validation passes")
          .at_least(1)
          .also_called({"eval_interval", "eval_steps", "val_every"}),
      field("eval_batches", t.eval_batches,
            "micro-batches per validation pass (the same ones each time); at most 100000, so "
            "that a typo cannot start a pass of days with no output")
          .at_least(1)
          .at_most(100000)
          .also_called({"eval_iters", "val_batches"}),
      field("seed", t.seed, "parameter initialisation seed").also_called({"init_seed"}),
      field("run_dir", t.run_dir, "directory for config.yaml, metrics.jsonl and checkpoints")
          .required()
          .also_called({"output_dir", "out_dir", "save_dir", "dir"}),
      choice("device", t.device, {"cpu", "cuda"},
             "where the step runs: cpu, or cuda (one GPU per rank; bf16 compute, fp32 master "
             "weights; several ranks average gradients with NCCL)")
          .also_called({"backend"}),
      choice("precision", t.precision, {"auto", "fp32", "bf16"},
             "arithmetic of the step: auto (fp32 on cpu, bf16 on cuda), fp32, or bf16 (fp32 "
             "master weights, gradients and AdamW moments; bf16 activations and compute "
             "weights; on cpu it needs AVX512_BF16 or AMX)")
          .also_called({"dtype", "mixed_precision", "compute_dtype"}),
      field("recompute", t.recompute,
            "cuda only: positions whose activations are recomputed in backward instead of "
            "stored: none, all, or unrolled positions such as 0,1,5")
          .also_called(
              {"activation_checkpointing", "gradient_checkpointing", "recompute_positions"}),
      field("threads", t.threads, "OpenMP threads per process; 0: all cores")
          .at_least(0)
          .at_most(4096)
          .also_called({"num_threads", "omp_threads", "n_threads"}),
      field("init_from", t.init_from,
            "checkpoint whose weights start the run (e.g. from rrt convert); \"\": random init")
          .also_called({"init", "load_from", "pretrained", "init_checkpoint", "from"}),
      field("init_std", t.init_std, "standard deviation of the random initialisation")
          .above(0)
          .also_called({"initializer_range", "std"}),
      field("time_budget_minutes", t.time_budget_minutes,
            "stop (evaluating and saving a checkpoint) after this many minutes of training in "
            "this invocation; 0: no limit")
          .at_least(0)
          .also_called({"max_minutes", "time_limit", "budget_minutes", "max_time"}),
      field("memory_check", t.memory_check,
            "refuse to start when the planned memory (parameters, gradients, AdamW moments, "
            "activations, scratch, teacher) exceeds what the process may use: the cgroup limit "
            "(Slurm --mem) or MemAvailable, whichever is smaller; on `train.device: cuda` also "
            "the device model's planned GPU blocks against the GPU's free memory "
            "(cudaMemGetInfo), before they are allocated (docs/runs.md, \"Memory\")")
          .also_called({"check_memory"}),
  };
}

std::vector<Field> distill_fields(DistillConfig& d) {
  return {
      field("teacher", d.teacher,
            "frozen teacher: an rrt checkpoint (.h5) or a Hugging Face model directory, with the "
            "student's vocabulary; \"\": no distillation")
          .also_called({"teacher_model", "teacher_path", "teacher_checkpoint"}),
      choice("divergence", d.divergence, {"forward_kl", "reverse_kl", "tv"},
             "KD term: forward_kl KL(p_teacher || p_student), reverse_kl KL(p_student || "
             "p_teacher), tv total variation")
          .also_called({"kd_loss", "loss", "kl", "distance"}),
      field("temperature", d.temperature,
            "tau: both distributions are softmax(logits / tau); the KD term is multiplied by "
            "tau^2")
          .above(0)
          .also_called({"tau", "temp", "kd_temperature"}),
      field("alpha", d.alpha, "mix: loss = (1 - alpha) CE + alpha KD, at every exit")
          .at_least(0)
          .at_most(1)
          .also_called({"kd_weight", "kd_alpha", "distill_weight", "mix", "lambda"}),
  };
}

std::vector<Field> early_exit_fields(EarlyExitConfig& e, ExitHeadConfig& head) {
  return {
      field("exits", e.exits,
            "loops whose end is an exit sharing the final norm and head: none (only the final "
            "loop K), all (1..K), or ascending loop numbers that include K")
          .items(check_exit_items, "none, all, or loop numbers 1..K")
          .also_called({"exit_loops", "exit_layers", "early_exits"}),
      field("weights", e.weights,
            "w_k per exit: aggressive(c) (c before K, 1 at K), weighted (proportional to k, sum "
            "1), uniform (1 / exits), or one number per exit")
          .items(check_weight_items, "aggressive(c), weighted, uniform, or numbers >= 0")
          .also_called({"exit_weights", "loss_weights"}),
      field("self_distill", e.self_distill,
            "intermediate exits also get KL(stopgrad(p_final) || p_k) (needs two exits)")
          .also_called({"self_distillation", "self_kd", "sd"}),
      choice("train", e.train, {"all", "lora", "head_lora"},
             "what the optimizer updates (everything else frozen): all parameters, every LoRA "
             "(per position and the head adapters), or only the exits' head adapters")
          .also_called({"trainable", "freeze", "update", "train_only"}),
      field("head_lora_rank", head.lora_rank,
            "rank of a LoRA on the shared head for each intermediate exit "
            "(exit.{k}.head_lora.A/B; the final exit keeps the plain head); 0: none")
          .at_least(0)
          .also_called({"exit_head_rank", "head_rank", "exit_lora_rank"}),
  };
}

std::vector<Field> checkpoint_fields(CheckpointConfig& c) {
  return {
      field("every", c.every, "optimizer steps between checkpoints")
          .at_least(1)
          .also_called({"save_every", "interval", "save_steps", "save_interval"}),
      field("keep_last", c.keep_last, "how many of the newest checkpoints to keep in run_dir")
          .at_least(1)
          .also_called({"keep", "max_keep", "save_total_limit"}),
      field("resume", c.resume,
            "continue from the newest checkpoint in train.run_dir if one exists")
          .also_called({"auto_resume", "resume_from_checkpoint"}),
      choice("on_corrupt", c.on_corrupt, {"refuse", "fallback"},
             "when the newest checkpoint fails its checksums on resume: refuse (naming it and "
             "the newest intact one) or fallback (rename it to <name>.corrupt and resume from "
             "the newest intact one)")
          .also_called({"corrupt", "on_corruption", "if_corrupt"}),
      field("allow_config_change", c.allow_config_change,
            "keys (optim.lr), sections (optim) or all that may differ from the checkpoint's "
            "config on resume; others that change the model, data order or schedule are "
            "refused")
          .items(check_allow_config_change, "all, a section or a key that resume checks")
          .also_called({"allow_change", "allow_config_changes", "ignore_config_change"}),
      choice("existing", c.existing, {"refuse", "archive", "overwrite"},
             "a fresh run (resume false) in a train.run_dir that holds checkpoints: refuse, "
             "archive (move the earlier run's checkpoints, metrics and config to "
             "run_dir/archive/<time>/) or overwrite (delete them)")
          .also_called({"overwrite", "on_existing", "if_exists"}),
  };
}

std::vector<Field> distributed_fields(DistributedConfig& d) {
  return {
      field("overlap", d.overlap,
            "all-reduce gradient buckets during backward, each as soon as its gradients are "
            "final (false: one all-reduce after backward)")
          .also_called({"overlap_comm", "overlap_grad_reduce"}),
      field("bucket_mb", d.bucket_mb, "gradient bucket size in MiB (fp32) for the all-reduce")
          .above(0)
          .also_called({"bucket_cap_mb", "bucket_size", "reduce_bucket_size"}),
      field("zero1", d.zero1,
            "ZeRO stage 1: each rank keeps the AdamW moments of its slice of the parameters and "
            "updates only that slice; the slices are then all-gathered")
          .also_called({"zero", "zero_stage", "shard_optimizer"}),
  };
}

std::vector<Field> log_fields(LogConfig& l) {
  return {
      field("every", l.every, "optimizer steps between log lines (stdout and metrics.jsonl)")
          .at_least(1)
          .also_called({"log_every", "interval", "logging_steps", "log_interval"}),
      field("tensorboard", l.tensorboard,
            "also write the logged scalars to TensorBoard event files in train.run_dir "
            "(events.out.tfevents.*)")
          .also_called({"tb", "use_tensorboard", "report_to"}),
      field("profile_steps", l.profile_steps,
            "write a Chrome trace (Perfetto) of this many steps, from the second step of the "
            "invocation, to train.run_dir/profile_rank<r>.json; 0: none (rrt train --profile)")
          .at_least(0)
          .at_most(1000)
          .also_called({"profile", "trace_steps", "profiler_steps"}),
      field("peak_tflops", l.peak_tflops,
            "one device's dense peak in TFLOP/s, for the logged MFU; 0: H100/H200/A100 from a "
            "table on cuda, no MFU on cpu")
          .at_least(0)
          .also_called({"peak_flops", "device_tflops"}),
  };
}

// Shortest decimal that reads back as the same double, in fixed notation for everyday
// magnitudes, and always recognisable as a float ("10000.0", "1.0e-08").
std::string format_double(double x) {
  if (std::isnan(x)) return ".nan";
  if (std::isinf(x)) return x > 0 ? ".inf" : "-.inf";
  char buf[64];
  const double magnitude = std::fabs(x);
  const auto format = magnitude == 0 || (magnitude >= 1e-4 && magnitude < 1e16)
                          ? std::chars_format::fixed
                          : std::chars_format::scientific;
  std::string s(buf, std::to_chars(buf, buf + sizeof buf, x, format).ptr);
  const size_t e = s.find('e');
  if (s.find('.') == std::string::npos) s.insert(e == std::string::npos ? s.size() : e, ".0");
  return s;
}

bool reads_as_other_type(const std::string& s) {
  if (s.empty()) return true;
  YAML::Node node(s);
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  if (lower == "null" || lower == "~") return true;
  for (auto probe :
       {+[](const YAML::Node& n) { n.as<double>(); }, +[](const YAML::Node& n) { n.as<bool>(); }}) {
    try {
      probe(node);
      return true;
    } catch (const YAML::Exception&) {
    }
  }
  return false;
}

std::string format_string(const std::string& s) {
  YAML::Emitter out;
  if (reads_as_other_type(s)) out << YAML::DoubleQuoted;
  out << s;
  return out.c_str();
}

double as_double(const FieldValue& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (auto* u = std::get_if<uint64_t>(&v)) return static_cast<double>(*u);
  return std::get<double>(v);
}

std::string format_bound(double b) {
  std::string s = format_double(b);
  if (s.size() > 2 && s.ends_with(".0")) s.resize(s.size() - 2);
  return s;
}

}  // namespace

const std::vector<SectionInfo>& config_sections() {
  static const std::vector<SectionInfo> sections = {
      {"model",
       "The architecture (ModelConfig in model/config.h)",
       {"arch", "architecture", "network"}},
      {"recursion",
       "Looping: K loops over B = n_layers / K shared layers (RecursionConfig)",
       {"recurrence", "loop", "looping"}},
      {"lora",
       "Per-loop LoRA that relaxes the tied layers; rank 0 gives a plain recursive model "
       "(LoraConfig)",
       {"adapter", "adapters", "relaxation"}},
      {"data", "Token shards and the train/validation split", {"dataset", "datasets", "corpus"}},
      {"optim",
       "AdamW and the learning-rate schedule",
       {"optimizer", "optimiser", "opt", "optimization"}},
      {"train", "The step loop", {"training", "trainer", "run"}},
      {"distill",
       "Knowledge distillation from a frozen teacher (docs/distillation.md)",
       {"distillation", "kd", "knowledge_distillation", "teacher"}},
      {"early_exit",
       "Early-exit training: an exit at the end of each chosen loop (docs/distillation.md)",
       {"exits", "early_exits", "exit", "earlyexit"}},
      {"checkpoint",
       "Checkpoints in train.run_dir",
       {"checkpoints", "ckpt", "checkpointing", "save"}},
      {"distributed",
       "Data-parallel gradient synchronisation (used when started by mpirun or srun)",
       {"ddp", "parallel", "dist"}},
      {"log", "Progress lines and metrics.jsonl", {"logging", "logs", "metrics"}},
  };
  return sections;
}

std::vector<Field> config_fields(RunConfig& c) {
  std::vector<Field> all;
  auto add = [&all](const char* section, std::vector<Field> fields) {
    for (Field& f : fields) {
      f.section = section;
      all.push_back(std::move(f));
    }
  };
  add("model", model_fields(c.model.model));
  add("recursion", recursion_fields(c.model.recursion));
  add("lora", lora_fields(c.model.lora));
  add("data", data_fields(c.data));
  add("optim", optim_fields(c.optim));
  add("train", train_fields(c.train));
  add("distill", distill_fields(c.distill));
  add("early_exit", early_exit_fields(c.early_exit, c.model.exit_head));
  add("checkpoint", checkpoint_fields(c.checkpoint));
  add("distributed", distributed_fields(c.distributed));
  add("log", log_fields(c.log));
  return all;
}

std::string check_field(const Field& f, const FieldValue& v) {
  switch (f.type) {
    case FieldType::integer:
    case FieldType::unsigned_integer:
    case FieldType::number: {
      const double x = as_double(v);
      if (!std::isfinite(x)) return "must be a finite number, got " + format_value(v);
      const bool low = f.lo && (f.lo_open ? x <= *f.lo : x < *f.lo);
      const bool high = f.hi && (f.hi_open ? x >= *f.hi : x > *f.hi);
      if (low || high) {
        const std::string rule = describe_rule(f);
        return (f.lo && f.hi ? "must be in " : "must be ") + rule + ", got " + format_value(v);
      }
      return "";
    }
    case FieldType::choice: {
      const std::string& s = std::get<std::string>(v);
      if (std::find(f.choices.begin(), f.choices.end(), s) != f.choices.end()) return "";
      std::string error = "unknown value '" + s + "'; expected one of " + describe_rule(f);
      const std::string* closest = nullptr;
      int best = suggestion_tolerance(s) + 1;  // suggest only near misses
      for (const std::string& c : f.choices)
        if (int d = edit_distance(s, c); d < best) best = d, closest = &c;
      return closest ? error + "; did you mean '" + *closest + "'?" : error;
    }
    case FieldType::list: {
      const auto& items = std::get<std::vector<std::string>>(v);
      if (f.check_items) return f.check_items(items);
      for (size_t i = 0; i < items.size(); ++i) {
        if (std::find(f.choices.begin(), f.choices.end(), items[i]) == f.choices.end())
          return "unknown item '" + items[i] + "'; items are " + describe_rule(f);
        if (std::find(items.begin(), items.begin() + i, items[i]) != items.begin() + i)
          return "item '" + items[i] + "' appears twice";
      }
      return "";
    }
    case FieldType::string:
      return f.non_empty && std::get<std::string>(v).empty() ? "must not be empty" : "";
    case FieldType::boolean:
      return "";
    case FieldType::sources:
      return check_sources(std::get<std::vector<MixtureSource>>(v));
  }
  return "";
}

std::string describe_rule(const Field& f) {
  auto join = [](const std::vector<std::string>& items, const char* sep) {
    std::string s;
    for (size_t i = 0; i < items.size(); ++i) s += (i ? sep : "") + items[i];
    return s;
  };
  if (!f.rule_text.empty()) return f.rule_text;
  switch (f.type) {
    case FieldType::choice:
      return join(f.choices, ", ");
    case FieldType::list:
      return "any of " + join(f.choices, ", ");
    case FieldType::string:
      return f.non_empty ? "not empty" : "";
    case FieldType::boolean:
      return "";
    case FieldType::sources:
      return sources_rule_text();
    default:
      break;
  }
  if (f.lo && f.hi)
    return std::string(f.lo_open ? "(" : "[") + format_bound(*f.lo) + ", " + format_bound(*f.hi) +
           (f.hi_open ? ")" : "]");
  if (f.lo) return std::string(f.lo_open ? "> " : ">= ") + format_bound(*f.lo);
  if (f.hi) return std::string(f.hi_open ? "< " : "<= ") + format_bound(*f.hi);
  return f.type == FieldType::unsigned_integer ? ">= 0" : "";
}

std::string type_name(FieldType type) {
  switch (type) {
    case FieldType::integer:
    case FieldType::unsigned_integer:
      return "integer";
    case FieldType::number:
      return "number";
    case FieldType::boolean:
      return "bool";
    case FieldType::string:
      return "string";
    case FieldType::choice:
      return "choice";
    case FieldType::list:
      return "list";
    case FieldType::sources:
      return "sources";
  }
  return "?";
}

std::string format_value(const FieldValue& v) {
  struct Formatter {
    std::string operator()(int64_t x) const { return std::to_string(x); }
    std::string operator()(uint64_t x) const { return std::to_string(x); }
    std::string operator()(double x) const { return format_double(x); }
    std::string operator()(bool x) const { return x ? "true" : "false"; }
    std::string operator()(const std::string& s) const { return format_string(s); }
    std::string operator()(const std::vector<std::string>& items) const {
      std::string s = "[";
      for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + format_string(items[i]);
      return s + "]";
    }
    std::string operator()(const std::vector<MixtureSource>& sources) const {
      return format_sources(sources);
    }
  };
  return std::visit(Formatter{}, v);
}

int edit_distance(const std::string& a, const std::string& b) {
  // Levenshtein with adjacent transpositions ("optimal string alignment"): "trian" -> "train" is 1.
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

int suggestion_tolerance(const std::string& typed) {
  const int n = static_cast<int>(typed.size());
  return n <= 2 ? 0 : std::max(1, n / 3);  // one- and two-letter names: exact aliases only
}

}  // namespace rrt
