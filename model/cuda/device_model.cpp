// The device model (model/cuda/device_model.h): memory plan, parameter binding, forward and
// backward, the training step's loss. The structure follows model/recursive_model.cpp; the layer
// itself is model/cuda/device_layer.cpp; transfers and the optimizer are device_model_state.cpp.
#include "model/cuda/device_model.h"

#include <algorithm>

#include "core/arena.h"
#include "core/cuda/cuda_check.h"
#include "core/device.h"
#include "model/cuda/device_model_impl.h"
#include "ops/cuda/cross_entropy.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/exit_loss.h"
#include "ops/cuda/vector_ops.h"

namespace rrt {

using device_model_detail::Carver;
using device_model_detail::DeviceBlock;
using device_model_detail::kWhere;

void DeviceModel::Impl::plan_parameters() {
  // The host ParameterSet's arena, planned but not allocated: the same offsets, so upload and
  // download are single copies of the whole arena.
  Arena layout("device params");
  for (const auto& p : registry.params()) layout.plan(p.name, p.shape);
  for (int i = 0; i < layout.size(); ++i)
    offset.push_back(layout.offset_bytes(i) / static_cast<int64_t>(sizeof(float)));
  arena_floats = layout.total_bytes() / static_cast<int64_t>(sizeof(float));
  // A forward-only model (a teacher) keeps the bf16 compute copies alone.
  auto carve = [&](Carver& c) {
    if (!opt.forward_only) {
      master = c.take<float>(arena_floats);
      grad = c.take<float>(arena_floats);
      adam_m = c.take<float>(arena_floats);
      adam_v = c.take<float>(arena_floats);
    }
    compute = c.take<bf16>(arena_floats);
    norm_workspace = c.take<double>(ops::cuda::kSumSquaresBlocks + 1);
  };
  Carver measure;
  carve(measure);
  param_block.allocate(measure.used, "parameters, gradients and AdamW moments");
  Carver c{static_cast<char*>(param_block.ptr)};
  carve(c);
}

// Every activation, as RecursiveModel plans them: per position what backward reads (one shared
// stash for the recomputed positions), then shared scratch. Forward only: two residual buffers
// in turn, one stash for every position, no backward scratch.
void DeviceModel::Impl::carve_activations(Carver& c) {
  const ModelConfig& m = spec.model;
  const int64_t D = m.d_model, F = m.ffn, qd = m.q_dim(), kvd = m.kv_dim();
  const bool any_recompute =
      std::find(opt.recompute.begin(), opt.recompute.end(), true) != opt.recompute.end();
  std::vector<bf16*> buffers(static_cast<size_t>(opt.forward_only ? 2 : L + 1));
  for (auto& b : buffers) b = c.take<bf16>(M * D);
  resid.assign(static_cast<size_t>(L + 1), nullptr);
  for (int64_t l = 0; l <= L; ++l) resid[l] = buffers[static_cast<size_t>(l) % buffers.size()];
  auto carve_stash = [&]() {
    DeviceLayerStash s;
    s.xn1 = c.take<bf16>(M * D);
    s.mid = c.take<bf16>(M * D);
    s.xn2 = c.take<bf16>(M * D);
    s.q = c.take<bf16>(M * qd);
    s.att = c.take<bf16>(M * qd);
    s.k = c.take<bf16>(M * kvd);
    s.v = c.take<bf16>(M * kvd);
    s.up = c.take<bf16>(M * F);
    s.act = c.take<bf16>(M * F);
    if (m.gated()) s.gate = c.take<bf16>(M * F);
    s.rstd1 = c.take<float>(M);
    s.rstd2 = c.take<float>(M);
    if (m.norm == Norm::layer) {
      s.mean1 = c.take<float>(M);
      s.mean2 = c.take<float>(M);
    }
    s.lse = c.take<float>(M * m.n_heads);
    for (int j = 0; j < kNumProj; ++j) {
      const int64_t r = spec.lora_rank(static_cast<Proj>(j));
      if (r > 0) s.lora_u[j] = c.take<bf16>(M * r);
    }
    return s;
  };
  const DeviceLayerStash shared =
      any_recompute || opt.forward_only ? carve_stash() : DeviceLayerStash{};
  stash.clear();
  for (int64_t l = 0; l < L; ++l)
    stash.push_back(opt.recompute[static_cast<size_t>(l)] || opt.forward_only ? shared
                                                                              : carve_stash());
  final_h = c.take<bf16>(M * D);
  final_rstd = c.take<float>(M);
  final_mean = c.take<float>(M);
  tokens = c.take<int32_t>(M);
  if (opt.forward_only) return;
  const int64_t max_rank = std::max<int64_t>(spec.max_lora_rank(), 1);
  scratch.dxn = c.take<bf16>(M * D);
  d_resid = c.take<bf16>(M * D);
  d_final_h = c.take<bf16>(M * D);
  scratch.dq = c.take<bf16>(M * qd);
  scratch.datt = c.take<bf16>(M * qd);
  scratch.dk = c.take<bf16>(M * kvd);
  scratch.dv = c.take<bf16>(M * kvd);
  scratch.dgate = c.take<bf16>(M * F);
  scratch.dup = c.take<bf16>(M * F);
  scratch.dact = c.take<bf16>(M * F);
  scratch.lora_du = c.take<bf16>(M * max_rank);
  if (any_recompute) recompute_out = c.take<bf16>(M * D);
  targets = c.take<int32_t>(M);
  head_ws = c.take<char>(static_cast<int64_t>(head_ws_bytes));
  carve_exits(c);
}

void DeviceModel::Impl::bind_positions() {
  const RecursionConfig& r = spec.recursion;
  const ModelConfig& m = spec.model;
  layer_params.clear();
  layer_grads.clear();
  // Every parameter no position uses (head, final norm) is final after the head: L.
  grad_ready_after.assign(static_cast<size_t>(registry.size()), L);
  grad_ready_after[static_cast<size_t>(registry.index("embed.weight"))] = -1;
  for (int64_t l = 0; l < L; ++l) {
    const Position pos = position_of(r, l);
    DeviceLayerParams p;
    DeviceLayerGrads g;
    // Positions are bound in increasing order, so the first use is the smallest position.
    auto used = [&](int i) {
      int64_t& ready = grad_ready_after[static_cast<size_t>(i)];
      if (ready == L) ready = l;
      return i;
    };
    auto norm = [&](bool attn, bool bias) {
      return used(registry.index(
          ParamRegistry::norm_name(pos.layer, pos.loop, attn, r.per_loop_norms, bias)));
    };
    p.attn_norm = compute + offset[norm(true, false)];
    p.mlp_norm = compute + offset[norm(false, false)];
    g.attn_norm = grad_of(norm(true, false));
    g.mlp_norm = grad_of(norm(false, false));
    if (m.norm == Norm::layer) {
      p.attn_norm_bias = compute + offset[norm(true, true)];
      p.mlp_norm_bias = compute + offset[norm(false, true)];
      g.attn_norm_bias = grad_of(norm(true, true));
      g.mlp_norm_bias = grad_of(norm(false, true));
    }
    for (int j = 0; j < kNumProj; ++j) {
      const Proj proj = static_cast<Proj>(j);
      if (!m.has_proj(proj)) continue;
      const int w = used(registry.index(ParamRegistry::block_name(pos.layer, proj)));
      p.weight[j] = compute + offset[w];
      g.weight[j] = grad_of(w);
      if (m.linear_bias) {
        const int bi = used(
            registry.index(ParamRegistry::bias_name(pos.layer, proj, pos.loop, r.per_loop_norms)));
        p.bias[j] = compute + offset[bi];
        g.bias[j] = grad_of(bi);
      }
      p.rank[j] = spec.lora_rank(proj);
      p.scale[j] = static_cast<float>(spec.lora_scale(proj));
      if (p.rank[j] > 0) {
        const int a =
            used(registry.index(ParamRegistry::lora_name(pos.loop, pos.layer, proj, true)));
        const int b =
            used(registry.index(ParamRegistry::lora_name(pos.loop, pos.layer, proj, false)));
        p.lora_a[j] = compute + offset[a];
        p.lora_b[j] = compute + offset[b];
        g.lora_a[j] = grad_of(a);
        g.lora_b[j] = grad_of(b);
      }
    }
    layer_params.push_back(p);
    layer_grads.push_back(g);
  }
}

void DeviceModel::Impl::forward(const int32_t* host_tokens, int64_t n, int64_t t) {
  RRT_CHECK(n > 0 && t > 0 && n <= opt.max_batch && t <= opt.max_seq, kWhere, "batch ", n, " x ", t,
            " exceeds the planned capacity ", opt.max_batch, " x ", opt.max_seq);
  const ModelConfig& m = spec.model;
  const LayerDims d = dims(n, t);
  N = n;
  T = t;
  RRT_CUDA_CHECK(cudaMemcpyAsync(tokens, host_tokens, sizeof(int32_t) * d.M(),
                                 cudaMemcpyHostToDevice, stream));
  ops::cuda::embedding_forward(tokens, value_bf16("embed.weight"), resid[0], d.M(), d.D, m.vocab,
                               static_cast<float>(m.embedding_multiplier()), stream);
  const DeviceLayerContext c = context();
  for (int64_t l = 0; l < L; ++l)
    device_layer_forward(c, d, layer_params[l], stash[l], resid[l], resid[l + 1]);
  const bf16* final_bias =
      m.norm == Norm::layer ? value_bf16("final_norm.bias") : static_cast<const bf16*>(nullptr);
  device_norm_forward(c, d, resid[L], value_bf16("final_norm.weight"), final_bias, final_h,
                      final_mean, final_rstd);
}

void DeviceModel::Impl::backward() {
  const ModelConfig& m = spec.model;
  const LayerDims d = dims(N, T);
  const DeviceLayerContext c = context();
  RRT_CUDA_CHECK(cudaMemsetAsync(d_resid, 0, sizeof(bf16) * d.M() * d.D, stream));
  const int fn = registry.index("final_norm.weight");
  const int fb = m.norm == Norm::layer ? registry.index("final_norm.bias") : -1;
  device_norm_backward(c, d, resid[L], compute + offset[fn], final_mean, final_rstd, d_final_h,
                       d_resid, grad_of(fn), fb >= 0 ? grad_of(fb) : nullptr);
  // The hook runs as the work is enqueued: a GPU communicator orders its launch after it.
  grad_ready(L);
  const int final_exit = static_cast<int>(exit_resid.size()) - 1;
  for (int64_t l = L - 1; l >= 0; --l) {
    // An intermediate exit reads resid[l + 1]: its gradient joins d(resid[l + 1]) here.
    if (const int e = exit_at_resid[static_cast<size_t>(l + 1)]; e >= 0 && e < final_exit)
      device_norm_backward(c, d, resid[l + 1], compute + offset[fn], exit_mean[e], exit_rstd[e],
                           exit_dh[e], d_resid, grad_of(fn), fb >= 0 ? grad_of(fb) : nullptr);
    // A recomputed position refills the shared stash from its input residual first (its output,
    // identical to resid[l + 1], goes to a scratch buffer).
    if (opt.recompute[static_cast<size_t>(l)])
      device_layer_forward(c, d, layer_params[l], stash[l], resid[l], recompute_out);
    device_layer_backward(c, d, layer_params[l], layer_grads[l], stash[l], scratch, resid[l],
                          d_resid);
    grad_ready(l);
  }
  const int e = registry.index("embed.weight");
  if (float* de = grad_of(e))
    ops::cuda::embedding_backward(tokens, d_resid, de, d.M(), d.D, m.vocab,
                                  static_cast<float>(m.embedding_multiplier()), stream);
  grad_ready(-1);
}

namespace {
// Before any cuBLAS or cuDNN handle exists: their own errors would not say that no GPU is there.
std::unique_ptr<DeviceModel::Impl> make_impl(const ModelSpec& spec, const DeviceModelOptions& o) {
  RRT_CHECK(cuda_device_count() > 0, "train.device",
            "cuda: no CUDA GPU is visible to this process (check nvidia-smi and "
            "CUDA_VISIBLE_DEVICES), or set train.device: cpu");
  return std::make_unique<DeviceModel::Impl>(spec, o);
}
}  // namespace

DeviceModel::DeviceModel(const ModelSpec& spec, const DeviceModelOptions& options,
                         const TrainingLoss& loss)
    : impl_(make_impl(spec, options)) {
  Impl& s = *impl_;
  validate(s.spec);
  const ModelConfig& m = s.spec.model;
  if (s.opt.max_seq <= 0) s.opt.max_seq = m.max_seq_len;
  RRT_CHECK(s.opt.max_batch > 0 && s.opt.max_seq <= m.max_seq_len, kWhere, "capacity ",
            s.opt.max_batch, " x ", s.opt.max_seq, " must fit max_seq_len ", m.max_seq_len);
  s.L = s.spec.positions();
  s.M = s.opt.max_batch * s.opt.max_seq;
  if (s.opt.recompute.empty() || s.opt.forward_only)
    s.opt.recompute.assign(static_cast<size_t>(s.L), false);
  RRT_CHECK(static_cast<int64_t>(s.opt.recompute.size()) == s.L, kWhere, "recompute lists ",
            s.opt.recompute.size(), " positions; the model has ", s.L);
  // Shapes no attention path can run (cuDNN, or rrt's fallback where cuDNN cannot serve them)
  // fail here, before any memory is taken.
  ops::cuda::check_attention_shape(
      {s.opt.max_batch, s.opt.max_seq, m.n_heads, m.n_kv_heads, m.dh()},
      /*backward=*/!s.opt.forward_only);
  s.rope = std::make_unique<ops::cuda::DeviceRopeTable>(
      ops::RopeTable(s.opt.max_seq, m.rot_dim(), m.rope_theta));
  s.loss = loss;
  s.plan_exits();
  s.freeze();
  s.head_chunk = std::clamp<int64_t>(s.opt.head_chunk, 1, s.M);
  // One head workspace for the plain CE (validation) and the exit loss: chunk x V blocks.
  s.head_ws_bytes = ops::cuda::lm_head_workspace_bytes(m.vocab, s.head_chunk);
  if (!s.loss.plain())
    s.head_ws_bytes = std::max(
        s.head_ws_bytes, ops::cuda::exit_loss_workspace_bytes(
                             m.vocab, s.head_chunk, static_cast<int64_t>(s.exit_resid.size()),
                             s.loss.teacher, s.loss.self_distill, s.spec.exit_head.lora_rank));
  s.plan_parameters();
  Carver measure;
  s.carve_activations(measure);
  s.activation_block.allocate(measure.used, "activations and scratch");
  Carver c{static_cast<char*>(s.activation_block.ptr)};
  s.carve_activations(c);
  s.bind_positions();
  s.bind_exits();
}

DeviceModel::~DeviceModel() = default;

double DeviceModel::forward_backward(const int32_t* tokens, const int32_t* targets, int64_t N,
                                     int64_t T, float weight) {
  Impl& s = *impl_;
  RRT_CHECK(!s.opt.forward_only, kWhere,
            "this model was planned forward only (a teacher) and cannot train");
  if (!s.loss.plain()) return s.exits_forward_backward(tokens, targets, N, T, weight);
  const ModelConfig& m = s.spec.model;
  s.forward(tokens, N, T);
  const int64_t rows = N * T;
  RRT_CUDA_CHECK(cudaMemcpyAsync(s.targets, targets, sizeof(int32_t) * rows, cudaMemcpyHostToDevice,
                                 s.stream));
  RRT_CUDA_CHECK(cudaMemsetAsync(s.d_final_h, 0, sizeof(bf16) * rows * m.d_model, s.stream));
  const int head = s.registry.index(m.tied_head ? "embed.weight" : "head.weight");
  const ops::CrossEntropyResult ce = ops::cuda::lm_head_cross_entropy(
      s.gemm, s.final_h, s.compute + s.offset[head], s.targets, s.d_final_h, s.grad_of(head), rows,
      m.d_model, m.vocab, RecursiveModel::kIgnoreIndex, weight, s.head_ws, s.head_ws_bytes,
      s.head_chunk);
  s.backward();
  s.losses.total = s.losses.ce = s.losses.exit_ce[0] = ce.mean_loss;
  return ce.mean_loss;
}

void DeviceModel::set_grad_ready_hook(std::function<void(int64_t)> hook) {
  impl_->grad_ready_hook = std::move(hook);
}
const std::vector<int64_t>& DeviceModel::grad_ready_after() const {
  return impl_->grad_ready_after;
}
const std::vector<int64_t>& DeviceModel::parameter_offsets() const { return impl_->offset; }

double DeviceModel::loss(const int32_t* tokens, const int32_t* targets, int64_t N, int64_t T) {
  Impl& s = *impl_;
  RRT_CHECK(!s.opt.forward_only, kWhere, "a forward-only model (a teacher) has no loss workspace");
  const ModelConfig& m = s.spec.model;
  s.forward(tokens, N, T);
  RRT_CUDA_CHECK(cudaMemcpyAsync(s.targets, targets, sizeof(int32_t) * N * T,
                                 cudaMemcpyHostToDevice, s.stream));
  return ops::cuda::lm_head_cross_entropy(
             s.gemm, s.final_h, s.value_bf16(m.tied_head ? "embed.weight" : "head.weight"),
             s.targets, nullptr, nullptr, N * T, m.d_model, m.vocab, RecursiveModel::kIgnoreIndex,
             1.0f, s.head_ws, s.head_ws_bytes, s.head_chunk)
      .mean_loss;
}

void DeviceModel::logits(const int32_t* tokens, int64_t N, int64_t T, float* out) {
  Impl& s = *impl_;
  const ModelConfig& m = s.spec.model;
  s.forward(tokens, N, T);
  DeviceBlock logits;
  logits.allocate(sizeof(float) * N * T * m.vocab, "logits");
  ops::cuda::gemm(s.gemm, false, true, N * T, m.vocab, m.d_model, 1.f, s.final_h,
                  s.value_bf16(m.tied_head ? "embed.weight" : "head.weight"), 0.f,
                  static_cast<float*>(logits.ptr));
  RRT_CUDA_CHECK(
      cudaMemcpy(out, logits.ptr, sizeof(float) * N * T * m.vocab, cudaMemcpyDeviceToHost));
}
}  // namespace rrt
