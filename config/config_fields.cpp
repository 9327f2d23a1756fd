// The field lists of the model sections (model, recursion, lora) and of data and optim, the
// sections in file order, and config_fields, which joins them with the run sections'
// (config_fields_run.cpp). The rules and formatting of values are in config_field_rules.cpp.
#include "config/config_fields.h"

#include <string>
#include <utility>
#include <vector>

#include "config/config_field_builders.h"
#include "core/error.h"

namespace rrt {

namespace field_lists {
namespace {

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
            "a GGUF file (.gguf or bpe:<path>) for its tokenizer (byte-level BPE or "
            "SentencePiece), or an HF "
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

}  // namespace
}  // namespace field_lists

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
  using namespace field_lists;
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

}  // namespace rrt
