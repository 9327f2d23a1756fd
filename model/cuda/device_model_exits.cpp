// The device model's objectives beyond plain next-token CE (model/cuda/device_model.h): early
// exits at loop ends sharing the final norm and head, per-exit head adapters, self-distillation,
// distillation from a forward-only device teacher, and freezing. The twin of RecursiveModel's
// plan_exits, freeze and exits_forward_backward (model/recursive_model.cpp); the loss itself is
// ops/cuda/exit_loss, and backward adds each exit's norm backward into d_resid at its loop end
// (DeviceModel::Impl::backward).
#include <string>

#include "core/cuda/cuda_check.h"
#include "model/cuda/device_model.h"
#include "model/cuda/device_model_impl.h"
#include "ops/cuda/exit_loss.h"

namespace rrt {

using device_model_detail::Carver;
using device_model_detail::kWhere;

void DeviceModel::Impl::plan_exits() {
  const int64_t K = spec.recursion.loops, B = spec.recursion.block_layers;
  if (loss.exit_loops.empty()) loss.exit_loops = {K};
  if (loss.exit_weights.empty()) loss.exit_weights.assign(loss.exit_loops.size(), 1.0);
  const std::vector<int64_t>& loops = loss.exit_loops;
  RRT_CHECK(loops.back() == K, kWhere, "the last exit must be the final loop ", K, ", got loop ",
            loops.back());
  RRT_CHECK(loss.exit_weights.size() == loops.size(), kWhere, loops.size(), " exits but ",
            loss.exit_weights.size(), " exit weights");
  RRT_CHECK(loops.size() == 1 || spec.recursion.sharing == Sharing::cycle, kWhere,
            "early exits need cycle sharing (sequence sharing has no loop ends)");
  RRT_CHECK(!opt.forward_only || loss.plain(), kWhere,
            "a forward-only model (a teacher) trains nothing: it takes no training loss");
  const size_t E = loops.size();
  exit_resid.clear();
  exit_at_resid.assign(static_cast<size_t>(L + 1), -1);
  for (size_t e = 0; e < E; ++e) {
    RRT_CHECK(loops[e] >= 1 && loops[e] <= K && (e == 0 || loops[e] > loops[e - 1]), kWhere,
              "exit loops must ascend within 1..", K);
    exit_resid.push_back(loops[e] * B);
    exit_at_resid[static_cast<size_t>(loops[e] * B)] = static_cast<int>(e);
  }
  exit_h.assign(E, nullptr);
  exit_dh.assign(E, nullptr);
  exit_rstd.assign(E, nullptr);
  exit_mean.assign(E, nullptr);
  exit_lora_a.assign(E, nullptr);
  exit_lora_b.assign(E, nullptr);
  exit_lora_da.assign(E, nullptr);
  exit_lora_db.assign(E, nullptr);
  losses.exit_ce.assign(E, 0.0);
  losses.exit_kd.assign(E, 0.0);
  losses.exit_sd.assign(E, 0.0);
}

// The intermediate exits' normed states, statistics and gradients; the final exit reuses
// final_h and d_final_h (carved by carve_activations).
void DeviceModel::Impl::carve_exits(Carver& c) {
  const int64_t E = static_cast<int64_t>(exit_resid.size()), D = spec.model.d_model;
  for (int64_t e = 0; e + 1 < E; ++e) {
    exit_h[e] = c.take<bf16>(M * D);
    exit_dh[e] = c.take<bf16>(M * D);
    exit_rstd[e] = c.take<float>(M);
    exit_mean[e] = spec.model.norm == Norm::layer ? c.take<float>(M) : nullptr;
  }
  exit_h[E - 1] = final_h;
  exit_dh[E - 1] = d_final_h;
}

// As RecursiveModel::freeze: train lora keeps every LoRA (per position and the head adapters),
// head_lora the head adapters only. Frozen parameters get no gradient pointer (their weight
// gradient GEMMs are skipped, their arena slice stays zero) and adamw_step skips them.
void DeviceModel::Impl::freeze() {
  if (loss.train == TrainScope::all) return;
  bool any = false;
  for (int i = 0; i < registry.size(); ++i) {
    const bool lora =
        registry[i].kind == ParamKind::lora_a || registry[i].kind == ParamKind::lora_b;
    const bool head_adapter = lora && registry[i].layer < 0;
    const bool trains = loss.train == TrainScope::lora ? lora : head_adapter;
    registry.set_trainable(i, trains);
    any |= trains;
  }
  RRT_CHECK(any, "early_exit.train", "nothing would train: the model has no ",
            loss.train == TrainScope::lora ? "LoRA" : "head adapters (early_exit.head_lora_rank)");
}

void DeviceModel::Impl::bind_exits() {
  const int64_t E = static_cast<int64_t>(exit_resid.size());
  for (int64_t e = 0; e + 1 < E; ++e) {
    const std::string a = ParamRegistry::head_lora_name(loss.exit_loops[e], true);
    const std::string b = ParamRegistry::head_lora_name(loss.exit_loops[e], false);
    if (!registry.has(a)) continue;
    exit_lora_a[e] = value_bf16(a);
    exit_lora_b[e] = value_bf16(b);
    exit_lora_da[e] = grad_of(registry.index(a));
    exit_lora_db[e] = grad_of(registry.index(b));
  }
  // Intermediate exits add into the final norm's gradient at their loop's end (backward): it is
  // final once the earliest of them is done, after hook(k * B - 1), as on the CPU.
  if (E > 1) {
    for (const char* n : {"final_norm.weight", "final_norm.bias"})
      if (registry.has(n))
        grad_ready_after[static_cast<size_t>(registry.index(n))] = exit_resid[0] - 1;
  }
}

// Every exit's normed state, the teacher's forward on the same tokens, one chunked loss over all
// of them (which writes each exit's dh and the head's dW), then backward.
double DeviceModel::Impl::exits_forward_backward(const int32_t* host_tokens,
                                                 const int32_t* host_targets, int64_t n, int64_t t,
                                                 float weight) {
  RRT_CHECK(!loss.teacher || teacher != nullptr, kWhere,
            "the training loss distils from a teacher, but none is set (set_teacher)");
  forward(host_tokens, n, t);
  const ModelConfig& m = spec.model;
  const LayerDims d = dims(n, t);
  const DeviceLayerContext c = context();
  const int64_t rows = n * t, E = static_cast<int64_t>(exit_resid.size());
  RRT_CUDA_CHECK(cudaMemcpyAsync(targets, host_targets, sizeof(int32_t) * rows,
                                 cudaMemcpyHostToDevice, stream));
  const bf16* norm_w = value_bf16("final_norm.weight");
  const bf16* norm_b = m.norm == Norm::layer ? value_bf16("final_norm.bias") : nullptr;
  for (int64_t e = 0; e < E; ++e) {
    if (e + 1 < E)
      device_norm_forward(c, d, resid[exit_resid[e]], norm_w, norm_b, exit_h[e], exit_mean[e],
                          exit_rstd[e]);
    RRT_CUDA_CHECK(cudaMemsetAsync(exit_dh[e], 0, sizeof(bf16) * rows * m.d_model, stream));
  }
  const int head = registry.index(m.tied_head ? "embed.weight" : "head.weight");
  ops::cuda::ExitLossArgs a;
  a.M = rows;
  a.D = m.d_model;
  a.V = m.vocab;
  a.exits = E;
  a.h = exit_h.data();
  a.exit_weights = loss.exit_weights.data();
  a.W = compute + offset[head];
  a.targets = targets;
  a.ignore_index = RecursiveModel::kIgnoreIndex;
  if (loss.teacher) {
    Impl& tm = *teacher->impl_;
    tm.forward(host_tokens, n, t);  // same stream: ordered before the loss reads it
    a.teacher_h = tm.final_h;
    a.teacher_W = tm.value_bf16(tm.spec.model.tied_head ? "embed.weight" : "head.weight");
    a.teacher_D = tm.spec.model.d_model;
    a.divergence = loss.divergence;
    a.temperature = loss.temperature;
    a.alpha = loss.alpha;
  }
  a.self_distill = loss.self_distill;
  if (spec.exit_head.lora_rank > 0) {
    a.head_lora_rank = spec.exit_head.lora_rank;
    a.lora_A = exit_lora_a.data();
    a.lora_B = exit_lora_b.data();
    a.dA = exit_lora_da.data();
    a.dB = exit_lora_db.data();
  }
  a.dh = exit_dh.data();
  a.dW = grad_of(head);
  a.weight = weight;
  a.workspace = head_ws;
  a.workspace_bytes = head_ws_bytes;
  a.chunk = head_chunk;
  a.exit_ce = losses.exit_ce.data();
  a.exit_kd = losses.exit_kd.data();
  a.exit_sd = losses.exit_sd.data();
  const ops::ExitLossResult r = ops::cuda::exit_loss(gemm, a);
  losses.total = r.loss;
  losses.ce = r.ce;
  losses.kd = r.kd;
  losses.sd = r.sd;
  backward();
  return r.loss;
}

void DeviceModel::set_teacher(DeviceModel* teacher) {
  Impl& s = *impl_;
  RRT_CHECK(s.loss.teacher, kWhere,
            "this model's training loss has no distillation term (TrainingLoss::teacher)");
  RRT_CHECK(teacher != nullptr && teacher != this, kWhere, "needs another model");
  const Impl& t = *teacher->impl_;
  RRT_CHECK(t.opt.forward_only, kWhere,
            "the teacher must be planned forward only (DeviceModelOptions::forward_only)");
  RRT_CHECK(t.spec.model.vocab == s.spec.model.vocab, "distill.teacher",
            "the teacher's vocabulary has ", t.spec.model.vocab, " tokens but the student's has ",
            s.spec.model.vocab,
            "; distillation compares distributions over the same tokens: use a teacher with the "
            "student's tokenizer");
  RRT_CHECK(t.opt.max_batch >= s.opt.max_batch && t.opt.max_seq >= s.opt.max_seq, kWhere,
            "the teacher's capacity ", t.opt.max_batch, " x ", t.opt.max_seq,
            " is below the student's ", s.opt.max_batch, " x ", s.opt.max_seq);
  s.teacher = teacher;
}

}  // namespace rrt
