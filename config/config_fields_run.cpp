// The field lists of the run sections: train, distill, early_exit, checkpoint, distributed and
// log (config_fields.cpp joins them with the model's into config_fields).
#include <string>
#include <vector>

#include "config/config_field_builders.h"
#include "config/objective.h"
#include "config/resume_check.h"

namespace rrt::field_lists {

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

}  // namespace rrt::field_lists
