#include "trainer/trainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_verify.h"
#include "config/config_io.h"
#include "config/objective.h"
#include "config/resume_check.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/test_signal.h"
#include "core/trace.h"
#include "data/loader.h"
#include "distributed/communicator.h"
#include "distributed/grad_sync.h"
#include "evaluation/evaluate.h"
#include "evaluation/log_format.h"
#include "model/optimizer.h"
#include "model/recursive_model.h"
#include "trainer/initial_weights.h"
#include "trainer/loss_terms.h"
#include "trainer/memory_check.h"
#include "trainer/metrics_log.h"
#include "trainer/mixture_data.h"
#include "trainer/retention.h"
#include "trainer/run_directory.h"
#include "trainer/schedule.h"
#include "trainer/shutdown.h"
#include "trainer/teacher.h"
#include "trainer/tensorboard.h"
#include "trainer/trainable_model.h"
#include "trainer/zero1.h"

namespace rrt {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Trainer::State {
  RunConfig cfg;
  std::shared_ptr<Communicator> comm;
  std::string yaml;
  std::unique_ptr<TokenLoader> train, val;
  // data.sources instead of data.path: the mixture, and each source's validation split.
  std::unique_ptr<MixtureLoader> mixture;
  std::vector<std::unique_ptr<TokenLoader>> source_val;
  // distill.teacher, run forward only (its host copy; on cuda its forward runs on the GPU).
  std::unique_ptr<RecursiveModel> teacher;
  // The model on train.device (trainer/trainable_model.h); model->host() holds the weights that
  // initialisation, resuming and checkpoints use, `optimizer` the host AdamW state.
  std::unique_ptr<TrainableModel> model;
  std::unique_ptr<AdamW> optimizer;
  // More than one rank: buckets of the model's gradient buffer all-reduced during backward
  // (declared after the model, so destroyed before it).
  std::unique_ptr<GradSync> grad_sync;
  std::unique_ptr<Zero1> zero1;  // distributed.zero1 with more than one rank
  TrainState progress;
  std::vector<int32_t> inputs, targets;
  MetricsLog metrics;  // metrics.jsonl, appended (trainer/metrics_log.h)
  std::unique_ptr<TensorBoardWriter> tensorboard;  // log.tensorboard, rank 0
  std::string last_checkpoint;
  std::unique_ptr<RunLock> run_lock;               // rank 0: held while this trainer lives
  std::unique_ptr<CheckpointRetention> retention;  // rank 0: which checkpoints to keep
};

namespace {

std::string format_duration(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", s / 3600, s / 60 % 60);
  else
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", s / 60, s % 60);
  return buf;
}

// The mean over ranks of one value per rank (one process: the value itself, bit for bit).
double mean_over_ranks(Communicator& comm, double value) {
  comm.all_reduce_sum(&value, 1);
  return value / static_cast<double>(comm.world_size());
}

void broadcast_arena(Communicator& comm, Arena& arena) {
  comm.broadcast(arena.base(), arena.total_bytes(), 0);
}

}  // namespace

Trainer::Trainer(RunConfig config, std::shared_ptr<Communicator> comm)
    : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.comm = comm ? std::move(comm) : std::shared_ptr<Communicator>(make_communicator());
  Communicator& world = *s.comm;
  const bool root = world.is_root();
  s.cfg = std::move(config);
  derive_exit_head(s.cfg);  // the exits' head adapters, for configs built in code
  validate_run_config(s.cfg);
  const RunConfig& c = s.cfg;
  if (c.train.threads > 0) omp_set_num_threads(static_cast<int>(c.train.threads));
  s.yaml = to_yaml(c);

  const int64_t N = c.train.micro_batch, T = c.train.seq_len;
  RRT_CHECK(T <= c.model.model.max_seq_len, "train.seq_len", "sequence length ", T,
            " exceeds model.max_seq_len ", c.model.model.max_seq_len);
  if (c.data.sources.empty()) {
    const LoaderOptions lo{.path = c.data.path,
                           .seq_len = T,
                           .val_fraction = c.data.val_fraction,
                           .seed = c.data.seed,
                           .rank = world.rank(),
                           .world = world.world_size()};
    s.train = std::make_unique<TokenLoader>(lo, Split::train);
    if (c.data.val_fraction > 0) s.val = std::make_unique<TokenLoader>(lo, Split::validation);
    check_data_tokenizer(c, s.train->tokenizer());
    check_data_vocabulary(c, s.train->tokenizer(), s.train->vocab_size(), "train");
  } else {
    MixtureData mixture = open_mixture(c, world.rank(), world.world_size(), root);
    s.mixture = std::move(mixture.train);
    s.source_val = std::move(mixture.validation);
  }
  const TrainingLoss objective = training_loss_from(c);
  s.model = make_trainable_model(c, world, objective);
  // Document-aware batches: the shards' EOS ends each document (model/documents.h).
  s.model->set_document_eos(c.data.document_mask ? s.train->eos_id() : -1);
  RecursiveModel& host = s.model->host();
  // Before anything writes the arenas planned so far (they are mapped, not yet committed):
  // refuse a plan that does not fit rather than be killed part-way (trainer/memory_check.h).
  auto check_host_memory = [&](const RecursiveModel* teacher) {
    if (!c.train.memory_check) return;
    const bool sharded = c.distributed.zero1 && world.world_size() > 1;
    MemoryPlan plan = training_memory_plan(host, teacher, sharded ? 1.0 / world.world_size() : 1.0);
    for (const MemoryPart& part : s.model->extra_host_memory(teacher)) plan.parts.push_back(part);
    plan.processes = ranks_on_this_machine(world.world_size());
    check_memory(plan, available_memory(MemorySources::from_environment()),
                 "Lower train.micro_batch (activations grow with micro_batch x seq_len; "
                 "train.grad_accum keeps the batch), shorten train.seq_len, shard the AdamW "
                 "moments with distributed.zero1 over several ranks, put fewer ranks on a "
                 "machine, or ask for more memory (Slurm --mem)");
  };
  if (objective.teacher) {
    auto planned = [&](const RecursiveModel& teacher) { check_host_memory(&teacher); };
    s.teacher = load_teacher(c.distill.teacher, s.model->teacher_host_batch(),
                             s.model->teacher_host_seq(), planned);
    s.model->set_teacher(*s.teacher);
    // The teacher sees the documents the student sees (the fp32 CPU step runs this host model;
    // the bf16 and CUDA steps their own copies, which set_document_eos above reaches).
    s.teacher->set_document_eos(c.data.document_mask ? s.train->eos_id() : -1);
    if (root) std::printf("distilling from %s\n", c.distill.teacher.c_str());
  } else {
    check_host_memory(nullptr);
  }
  host.params().init({.seed = c.train.seed, .std = c.train.init_std});
  const ops::AdamWHyper hyper{c.optim.lr, c.optim.beta1, c.optim.beta2, c.optim.eps,
                              c.optim.weight_decay};
  if (c.distributed.zero1 && world.world_size() > 1) {
    s.zero1 = std::make_unique<Zero1>(world, host.params());
    s.optimizer = std::make_unique<AdamW>(host.params(), hyper, s.zero1->slice());
  } else {
    s.optimizer = std::make_unique<AdamW>(host.params(), hyper);
  }
  s.inputs.resize(N * T);
  s.targets.resize(N * T);
  if (world.world_size() > 1) {
    const GradSyncOptions sync{
        .bucket_bytes = static_cast<int64_t>(c.distributed.bucket_mb * 1024 * 1024),
        .overlap = c.distributed.overlap};
    s.grad_sync = s.model->make_grad_sync(world, sync);
  }

  // Rank 0 reads the run directory and the checkpoints; the others receive what it read.
  int64_t resumed = 0;
  std::vector<int64_t> mixture_counts(s.mixture ? s.mixture->size() : 0, 0);
  std::unique_ptr<AdamW> whole;  // ZeRO-1: rank 0 loads the whole optimizer, then scatters it
  if (root) {
    s.run_lock = claim_run_directory(c);  // the lock, stale temporaries, checkpoint.existing
    const auto existing = list_checkpoints(c.train.run_dir);
    if (c.checkpoint.resume && !existing.empty()) {
      if (s.zero1) whole = std::make_unique<AdamW>(host.params(), hyper);
      // Verified, and checked against this run's config (checkpoint/checkpoint_verify.h,
      // config/resume_check.h); a corrupt newest checkpoint is refused or skipped.
      CheckpointContents got;
      const size_t from =
          load_newest_intact(existing, c.checkpoint.on_corrupt, host.params(),
                             s.zero1 ? whole.get() : s.optimizer.get(), got,
                             [&](const CheckpointContents& header, const std::string& path) {
                               check_resume_config(c, world.world_size(), header.config_yaml,
                                                   header.state.world_size, path);
                             });
      s.progress = got.state;
      if (s.mixture) mixture_counts = resumed_mixture_counts(*s.mixture, got, existing[from]);
      s.last_checkpoint = existing[from];
      resumed = 1;
      std::printf("resuming from %s (step %ld)\n", existing[from].c_str(),
                  static_cast<long>(got.state.step));
    } else if (!c.train.init_from.empty()) {
      load_initial_weights(c.train.init_from, c.model, host.params());
      std::printf("initialised weights from %s\n", c.train.init_from.c_str());
    }
    if (world.world_size() > 1)
      std::printf(
          "data parallel: %d ranks (%s), global micro-batch %ld x %ld tokens, gradients in %ld "
          "buckets of %.1f MiB, %s%s\n",
          world.world_size(), s.model->parallel_backend(world).c_str(),
          static_cast<long>(N * world.world_size()), static_cast<long>(T),
          static_cast<long>(s.grad_sync->bucket_count()), c.distributed.bucket_mb,
          c.distributed.overlap ? "overlapped with backward" : "reduced after backward",
          s.zero1 ? ", ZeRO-1 (optimizer state sharded)" : "");
  }
  world.broadcast(&resumed, sizeof(resumed), 0);
  world.broadcast(&s.progress, sizeof(s.progress), 0);
  s.progress.world_size = world.world_size();  // recorded in the checkpoints this run writes
  broadcast_arena(world, host.params().values_arena());
  if (resumed) {
    if (s.zero1) {
      s.zero1->scatter_moments(whole.get(), *s.optimizer);
      whole.reset();
    } else {
      broadcast_arena(world, s.optimizer->first_moment());
      broadcast_arena(world, s.optimizer->second_moment());
    }
    s.optimizer->set_steps_taken(s.progress.adam_step);
    // The cursor counts global entries, so it resumes on any world size.
    if (s.train) s.train->restore({s.progress.data_epoch, s.progress.data_index});
  }
  if (s.mixture) {  // rank 0 read the counts (or starts the mixture over): every rank gets them
    world.broadcast(mixture_counts.data(), mixture_counts.size() * sizeof(int64_t), 0);
    if (resumed) s.mixture->restore(mixture_counts);
  }
  // The initialised, loaded or resumed host state goes to where the step runs.
  s.model->upload(resumed ? s.optimizer.get() : nullptr);
  if (const std::string where = s.model->describe(); root && !where.empty())
    std::printf("%s\n", where.c_str());
  if (!root) return;
  s.retention = std::make_unique<CheckpointRetention>(c.train.run_dir, c.checkpoint.keep_last);
  if (resumed)
    s.retention->resume((fs::path(c.train.run_dir) / "metrics.jsonl").string(), s.progress.step);
  // The resolved config sits beside the checkpoints (and inside each of them).
  write_file_atomically((fs::path(c.train.run_dir) / "config.yaml").string(), s.yaml);
  // Lines logged after the checkpoint we resume from will be logged again: they are cut off.
  s.metrics.open((fs::path(c.train.run_dir) / "metrics.jsonl").string(), s.progress.step);
  if (c.log.tensorboard)
    s.tensorboard = std::make_unique<TensorBoardWriter>(c.train.run_dir, s.progress.step + 1);
}

Trainer::~Trainer() = default;

double Trainer::evaluate() {
  State& s = *s_;
  const std::vector<double> losses = validation_losses();
  return s.mixture ? mixture_validation_loss(*s.mixture, losses) : losses.front();
}

std::vector<double> Trainer::validation_losses() {
  State& s = *s_;
  const int64_t N = s.cfg.train.micro_batch, T = s.cfg.train.seq_len;
  RRT_CHECK(s.val != nullptr || !s.source_val.empty(), "evaluate",
            "there is no validation split (data.val_fraction is 0)");
  std::vector<TokenLoader*> loaders;
  if (s.val) loaders.push_back(s.val.get());
  for (const auto& val : s.source_val) loaders.push_back(val.get());
  std::vector<double> losses;
  for (TokenLoader* val : loaders) {
    // Each rank scores its slice of every global micro-batch; equal slices, so the mean of means.
    const double local = s.model->validation_loss(*val, N, T, s.cfg.train.eval_batches,
                                                  s.inputs.data(), s.targets.data());
    losses.push_back(mean_over_ranks(*s.comm, local));
  }
  return losses;
}

TrainSummary Trainer::run(int64_t stop_after) {
  State& s = *s_;
  const RunConfig& c = s.cfg;
  Communicator& world = *s.comm;
  const bool root = world.is_root();
  const int64_t N = c.train.micro_batch, T = c.train.seq_len, accum = c.train.grad_accum;
  const int64_t ranks = world.world_size();
  const ScheduleSpec schedule{c.optim.schedule,     c.optim.lr,    c.optim.min_lr_ratio,
                              c.optim.warmup_steps, c.train.steps, c.optim.decay_fraction};
  // Model FLOPs of a step (the MFU convention), plus the teacher's forward (a third of its
  // forward + backward): distillation's cost shows in GFLOP/s instead of hiding behind tokens/s.
  const double teacher_flops =
      s.teacher ? s.teacher->train_flops(N, T) / 3.0 * static_cast<double>(accum * ranks) : 0.0;
  const double flops_per_step =
      s.model->host().train_flops(N, T) * static_cast<double>(accum) * static_cast<double>(ranks) +
      teacher_flops;
  const double peak_tflops = c.log.peak_tflops > 0 ? c.log.peak_tflops : s.model->peak_tflops();
  // log.profile_steps: a Chrome trace of steps [profile_first, profile_last] of this invocation
  // (from its second step: the first pays for page faults, buffers and graph builds).
  const int64_t profile_first = s.progress.step + 1 + (c.train.steps > s.progress.step + 1 ? 1 : 0);
  const int64_t profile_last = profile_first + c.log.profile_steps - 1;
  TrainSummary summary;
  summary.first_step = s.progress.step + 1;
  TrainableModel& runner = *s.model;
  const auto t_start = Clock::now();
  auto t_window = t_start;
  int64_t window_steps = 0;
  // Time rank 0 spends waiting for the gradient all-reduce after backward: the communication
  // that overlap did not hide (with distributed.overlap false, all of it).
  double window_comm_wait = 0;

  auto save = [&](int64_t step) {
    runner.sync_to_host(*s.optimizer);  // cuda: masters, moments, step count, before reading
    const LoaderCursor cur = s.train ? s.train->cursor() : LoaderCursor{};
    s.progress.step = step;
    s.progress.adam_step = s.optimizer->steps_taken();
    s.progress.data_epoch = cur.epoch;
    s.progress.data_index = cur.index;
    const std::string path = checkpoint_path(c.train.run_dir, step);
    // ZeRO-1: the moments are gathered whole on rank 0 (a collective: every rank takes part).
    std::unique_ptr<AdamW> gathered = s.zero1 ? s.zero1->gather_moments(*s.optimizer) : nullptr;
    if (root) {
      save_checkpoint(path, s.yaml, runner.host().params(),
                      s.zero1 ? gathered.get() : s.optimizer.get(), s.progress,
                      s.mixture ? s.mixture->counts() : std::vector<int64_t>{});
      s.retention->saved(step);
    }
    world.barrier();  // the checkpoint exists once any rank goes on
    s.last_checkpoint = path;
  };
  auto log_eval = [&](int64_t step) {
    const std::vector<double> losses = s.mixture ? validation_losses() : std::vector<double>{};
    const double val = s.mixture ? mixture_validation_loss(*s.mixture, losses) : evaluate();
    summary.last_val_loss = val;
    if (!root) return;
    s.retention->validated(step, val);
    std::string per_source;
    for (size_t i = 0; i < losses.size(); ++i) {
      char value[32];
      std::snprintf(value, sizeof(value), " %.4f", losses[i]);
      per_source += (i ? ", " : " | ") + s.mixture->name(i) + value;
    }
    std::printf("step %6ld | val loss %.4f | val ppl %s%s\n", static_cast<long>(step), val,
                format_perplexity(std::exp(val)).c_str(), per_source.c_str());
    check_stdout("validation line");
    nlohmann::json line{{"step", step}, {"val_loss", val}, {"val_ppl", std::exp(val)}};
    for (size_t i = 0; i < losses.size(); ++i) line["val_loss/" + s.mixture->name(i)] = losses[i];
    s.metrics.append(line);
    if (s.tensorboard) s.tensorboard->add_metrics(line);
  };

  LossTerms terms(runner.host().training_loss());  // CE, KD and per-exit terms for the log
  bool profiling = false;
  struct StopTrace {  // an error part-way through the profile still stops the recorder
    bool& on;
    ~StopTrace() {
      if (on) trace::stop();
    }
  } stop_trace{profiling};
  for (int64_t step = s.progress.step + 1; step <= c.train.steps; ++step) {
    if (step == profile_first && c.log.profile_steps > 0) {
      trace::start(world.rank());
      profiling = true;
    }
    std::optional<trace::Span> step_span(std::in_place, "step", "step", step);
    runner.zero_grads();
    terms.clear();
    double loss = 0;
    for (int64_t micro = 0; micro < accum; ++micro) {
      RRT_TRACE_SPAN("micro_batch", micro);
      // Buckets go out during the last micro-batch's backward, once their gradients are final.
      if (s.grad_sync && micro == accum - 1) s.grad_sync->arm();
      {
        RRT_TRACE_SPAN("data");
        if (s.mixture)
          s.mixture->next_batch(N, s.inputs.data(), s.targets.data());
        else
          s.train->next_batch(N, s.inputs.data(), s.targets.data());
      }
      RRT_TRACE_SPAN("forward_backward");
      loss += runner.forward_backward(s.inputs.data(), s.targets.data(), N, T,
                                      1.0f / static_cast<float>(accum));
      if (micro == 0)
        test_signal_point("step", step, world.rank(), [] { return stop_signal() != 0; });
      terms.add(runner.last_losses(), 1.0 / static_cast<double>(accum));
    }
    loss /= static_cast<double>(accum);
    // Data parallel: the mean gradient and loss of the global batch (no-ops on one process).
    // On cuda the host runs ahead of the GPU, so the wait also covers backward's last kernels:
    // comm_wait_ms is an upper bound there.
    if (s.grad_sync) {
      RRT_TRACE_SPAN("grad_sync.wait");
      const auto t_wait = Clock::now();
      s.grad_sync->finish();
      window_comm_wait += std::chrono::duration<double>(Clock::now() - t_wait).count();
    }
    std::optional<trace::Span> span(std::in_place, "loss.mean_over_ranks");
    // One all-reduce carries the loss and whether any rank was asked to stop (shutdown.h), so
    // every rank stops after the same step at no extra cost.
    double reduced[2] = {loss, stop_signal() != 0 ? 1.0 : 0.0};
    world.all_reduce_sum(reduced, 2);
    loss = reduced[0] / static_cast<double>(ranks);
    const bool stop_requested = reduced[1] > 0;
    terms.mean_over_ranks(world);
    span.emplace("grad_norm");
    const double grad_norm = runner.grad_norm();
    span.reset();
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
      // Stop before the optimizer touches the weights. The weights after step - 1 computed
      // this, so their checkpoint is no good: it and any newer than the last good one move
      // to diverged/ (retention.h), and a plain resume starts from the good one.
      int64_t good = 0;
      std::string moved;
      if (root) {
        for (const std::string& name : s.retention->diverged(step)) moved += " " + name;
        good = s.retention->last_good();
      }
      world.broadcast(&good, sizeof(good), 0);  // every rank names it, after rank 0 moved
      RRT_FAIL(
          "train", "non-finite ", std::isfinite(loss) ? "gradient norm" : "loss", " at step ", step,
          "; stopping without writing a checkpoint. The last good checkpoint is ",
          good > 0 ? checkpoint_path(c.train.run_dir, good) : "(none)",
          moved.empty() ? ""
                        : "; the newer ones hold the diverging weights and were moved to " +
                              (fs::path(c.train.run_dir) / "diverged").string() + ":" + moved,
          ". Lower optim.lr or set optim.grad_clip (with checkpoint.allow_config_change=[optim] "
          "so that the resume accepts them), then rerun: it resumes from that checkpoint.");
    }
    if (root) s.retention->trained(step);  // the weights after step - 1 trained finitely
    if (c.optim.grad_clip > 0 && grad_norm > c.optim.grad_clip)
      runner.scale_grads(static_cast<float>(c.optim.grad_clip / grad_norm));
    const double lr = learning_rate(schedule, step);
    span.emplace("optimizer");
    runner.optimizer_step(*s.optimizer, lr);
    if (s.zero1) {
      span.emplace("zero1.gather_parameters");
      s.zero1->gather_parameters();
    }
    runner.parameters_updated();
    span.reset();
    test_signal_point("after_step", step, world.rank());
    s.progress.tokens_seen += N * T * accum * ranks;
    summary.losses.push_back(loss);
    summary.last_step = step;
    ++window_steps;

    if (root && (step % c.log.every == 0 || step == c.train.steps)) {
      const double window = std::chrono::duration<double>(Clock::now() - t_window).count();
      const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
      const double step_time = window / static_cast<double>(window_steps);
      const double tok_s = static_cast<double>(N * T * accum * ranks) / step_time;
      const double gflops = flops_per_step / step_time / 1e9;
      const double eta = step_time * static_cast<double>(c.train.steps - step);
      const double mfu =
          peak_tflops > 0 ? gflops / (peak_tflops * 1e3 * static_cast<double>(ranks)) : 0.0;
      const int64_t peak_rss = peak_rss_bytes();
      const double teacher_fraction = teacher_flops / flops_per_step;
      std::printf(
          "step %6ld/%ld | loss %.4f%s | lr %.2e | grad norm %.3f | %.0f tok/s | %s | ETA %s\n",
          static_cast<long>(step), static_cast<long>(c.train.steps), loss, terms.brief().c_str(),
          lr, grad_norm, tok_s, throughput_text(gflops, teacher_fraction, mfu, peak_rss).c_str(),
          format_duration(eta).c_str());
      check_stdout("progress line");
      nlohmann::json line{{"step", step},
                          {"loss", loss},
                          {"lr", lr},
                          {"grad_norm", grad_norm},
                          {"tokens_per_s", tok_s},
                          {"gflops", gflops},
                          {"tokens", s.progress.tokens_seen},
                          {"elapsed_s", elapsed}};
      if (s.grad_sync) line["comm_wait_ms"] = window_comm_wait / window_steps * 1e3;
      // A mixture's realised tokens per source, over all ranks since the run began.
      for (size_t i = 0; s.mixture && i < s.mixture->size(); ++i)
        line["source_tokens/" + s.mixture->name(i)] = s.mixture->counts()[i] * T;
      if (teacher_flops > 0) line["teacher_flops_fraction"] = teacher_fraction;
      if (mfu > 0) line["mfu"] = mfu;
      if (peak_rss >= 0) line["peak_rss_gib"] = static_cast<double>(peak_rss) / 1073741824.0;
      terms.write(line);
      s.metrics.append(line);
      if (s.tensorboard) s.tensorboard->add_metrics(line);
      t_window = Clock::now();
      window_steps = 0;
      window_comm_wait = 0;
    }
    const bool last = step == c.train.steps;
    // A time budget: rank 0's clock decides, so that every rank stops after the same step.
    int64_t out_of_time = 0;
    if (c.train.time_budget_minutes > 0) {
      out_of_time = std::chrono::duration<double>(Clock::now() - t_start).count() >=
                    c.train.time_budget_minutes * 60.0;
      world.broadcast(&out_of_time, sizeof(out_of_time), 0);
      if (out_of_time && root && !last)
        std::printf("time budget of %g minutes reached after step %ld: evaluating and saving\n",
                    c.train.time_budget_minutes, static_cast<long>(step));
    }
    // A signal (shutdown.h): this step is done; save it and stop, skipping evaluation.
    const bool on_signal = stop_requested && !last;
    const bool interrupted =
        (stop_after > 0 && step - summary.first_step + 1 >= stop_after) || out_of_time || on_signal;
    if ((s.val || !s.source_val.empty()) &&
        ((c.train.eval_every > 0 && step % c.train.eval_every == 0) || last || out_of_time)) {
      RRT_TRACE_SPAN("evaluate");
      log_eval(step);
    }
    const bool saving =
        (c.checkpoint.every > 0 && step % c.checkpoint.every == 0) || last || interrupted;
    // Tests: the point where a stop signal is acted on, reached only after it arrived (under
    // `rrt sweep`, after the sweep passed it on): before the stop's checkpoint, or after this
    // step's periodic one when the signal came during it.
    if (on_signal) test_signal_point("stopping", step, world.rank());
    if (saving) {
      RRT_TRACE_SPAN("checkpoint");
      save(step);
    }
    // A signal that came during this evaluation or checkpoint needs no further step.
    const bool after_save = saving && !interrupted && !last && any_rank_stopping(world);
    if (after_save) test_signal_point("stopping", step, world.rank());
    if (on_signal || after_save) summary.stopped_by_signal = stop_signal() ? stop_signal() : -1;
    const bool stopping = interrupted || after_save;
    step_span.reset();
    if (profiling && (step == profile_last || last || stopping)) {
      trace::stop();
      profiling = false;
      const std::string path =
          (fs::path(c.train.run_dir) / ("profile_rank" + std::to_string(world.rank()) + ".json"))
              .string();
      try {
        fs::create_directories(c.train.run_dir);  // ranks on other machines see it first here
        trace::write_chrome_trace(path);
      } catch (const Error& e) {
        if (root) throw;  // rank 0 owns the run directory: its failed write is the run's error
        std::fprintf(stderr, "rrt: rank %d: no profile written: %s\n", world.rank(), e.what());
      }
      if (root)
        std::printf("profile of steps %ld..%ld written to %s (open it in ui.perfetto.dev)\n",
                    static_cast<long>(profile_first), static_cast<long>(step), path.c_str());
    }
    if (stopping) break;
  }
  summary.last_checkpoint = s.last_checkpoint;
  summary.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return summary;
}

}  // namespace rrt
