// The run configuration: plain structs with defaults, one per YAML section. The model sections
// (model, recursion, lora) are the structs of model/config.h inside ModelSpec.
//
// Every field is described once, in config/config_fields.cpp (name, doc, rule); that list
// drives YAML parsing, validation, printing, key=value overrides and docs/configs.md.
// Adding a field: add it here, then one line in the section's list there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/mixture_source.h"
#include "model/config.h"

namespace rrt {

struct DataConfig {
  std::string path = "";  // directory of token shards written by `rrt prepare` (or one shard file)
  // A weighted mixture instead of path (data/mixture.h): several shard sets, each with a weight
  // and an optional epoch cap. Exactly one of path and sources is set.
  std::vector<MixtureSource> sources;
  // "byte", a SentencePiece .model path or a .gguf path (used by rrt prepare / demo)
  std::string tokenizer = "byte";
  double val_fraction = 0.05;  // last fraction of the sequences held out for validation
  uint64_t seed = 1;           // shuffle seed
  // Document-aware batches: within a packed sequence, attention stops at each EOS and RoPE
  // positions restart after it (each document computed as if alone).
  bool document_mask = false;
};

struct OptimConfig {
  double lr = 3e-4, min_lr_ratio = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  double grad_clip = 1.0;           // global-norm clipping; 0 disables
  std::string schedule = "cosine";  // cosine | constant | wsd (warmup-stable-decay)
  int64_t warmup_steps = 100;
  double decay_fraction = 0.2;  // wsd: fraction of steps in the final decay
};

struct TrainConfig {
  int64_t steps = 1000, micro_batch = 8, grad_accum = 1, seq_len = 256;
  int64_t eval_every = 100, eval_batches = 20;
  uint64_t seed = 1;  // parameter init seed
  std::string run_dir = "runs/default";
  std::string device = "cpu";  // cpu | cuda (one GPU: model/cuda/device_model.h)
  // auto | fp32 | bf16: auto is fp32 on cpu and bf16 on cuda (its only precision); bf16 on cpu
  // is the CPU bf16 backend (ops/cpu_bf16/backend.h): fp32 masters, bf16 compute.
  std::string precision = "auto";
  // Activation recomputation on cuda: none | all | unrolled positions "0,3,5" (0-based). A
  // recomputed position keeps only its input residual and reruns its forward in backward.
  std::string recompute = "none";
  int64_t threads = 0;         // OpenMP threads; 0 = all cores
  std::string init_from = "";  // checkpoint to start from (weights only)
  double init_std = 0.02;
  // Stop (evaluating and saving a checkpoint) once this many minutes of this invocation's
  // training have passed; 0: no limit. A rerun resumes and gets the budget afresh.
  double time_budget_minutes = 0;
  // Refuse to start when the planned memory exceeds what the process may use (cgroup limit,
  // MemAvailable; on cuda also the GPU's free memory; trainer/memory_check.h).
  bool memory_check = true;
};

// Knowledge distillation from a frozen teacher (docs/distillation.md).
struct DistillConfig {
  std::string teacher = "";  // rrt checkpoint (.h5) or HF model directory; "": no distillation
  std::string divergence = "forward_kl";  // forward_kl | reverse_kl | tv
  double temperature = 1.0;               // tau (KD carries tau^2)
  double alpha = 0.5;                     // loss = (1 - alpha) CE + alpha KD
};

// Early-exit training: exits at loop ends sharing the final norm and head (docs/distillation.md).
struct EarlyExitConfig {
  std::vector<std::string> exits = {"none"};  // none | all | loop numbers 1..K (K included)
  // aggressive(c) | weighted | uniform | one number per exit
  std::vector<std::string> weights = {"aggressive(0.1)"};
  bool self_distill = false;  // intermediate exits also get KL(stopgrad(p_final) || p_k)
  std::string train = "all";  // all | lora: which parameters the optimizer updates
};

struct CheckpointConfig {
  int64_t every = 500;    // optimizer steps between checkpoints
  int64_t keep_last = 3;  // older checkpoints in run_dir are deleted
  bool resume = true;     // continue from the newest checkpoint in run_dir if there is one
  // When the newest checkpoint fails verification: refuse (name it and the newest intact one)
  // or fallback (rename it to <name>.corrupt and resume from the newest intact one).
  std::string on_corrupt = "refuse";
  // Keys ("optim.lr"), sections ("optim") or "all" that may differ from the checkpoint's config
  // on resume although the resumed run then no longer continues the same run bit for bit.
  std::vector<std::string> allow_config_change = {};
  // A fresh run (resume false) in a run_dir that holds checkpoints: refuse | archive | overwrite
  std::string existing = "refuse";
};

// Data-parallel gradient synchronisation (docs/distributed.md); ignored on one process.
struct DistributedConfig {
  bool overlap = true;     // all-reduce gradient buckets during backward as they become final
  double bucket_mb = 4.0;  // bucket size in MiB of fp32 gradients
  bool zero1 = false;      // ZeRO-1: AdamW moments sharded across ranks, parameters all-gathered
};

struct LogConfig {
  int64_t every = 10;       // optimizer steps between log lines
  bool tensorboard = true;  // also write the logged scalars as TensorBoard event files
  // Chrome trace of this many steps (from the second step of the invocation) to
  // run_dir/profile_rank<r>.json; 0: no profile (core/trace.h).
  int64_t profile_steps = 0;
  // Dense peak of one device in TFLOP/s for the logged MFU; 0: known GPUs from a table, no MFU
  // on cpu.
  double peak_tflops = 0;
};

struct RunConfig {
  ModelSpec model;  // YAML sections: model, recursion, lora
  DataConfig data;
  OptimConfig optim;
  TrainConfig train;
  DistillConfig distill;
  EarlyExitConfig early_exit;
  CheckpointConfig checkpoint;
  DistributedConfig distributed;
  LogConfig log;
};

}  // namespace rrt
