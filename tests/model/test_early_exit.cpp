// The model side of early exits and distillation: the memory they add is bounded by
// chunk x vocab (must-show 2), a forward-only teacher plans one stash whatever its depth and
// computes what a training model computes, exits wired into backward at their loop ends (the
// gradient-ready hook stays truthful), freezing, and the errors of a mis-set teacher.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "model/optimizer.h"
#include "model/recursive_model.h"

namespace rrt {
namespace {

ModelSpec student_spec(int64_t vocab = 97) {
  ModelSpec s;
  s.model = {
      .vocab = vocab, .d_model = 24, .n_heads = 6, .n_kv_heads = 2, .ffn = 40, .max_seq_len = 64};
  s.recursion = {.block_layers = 2, .loops = 3};
  s.lora = {.rank_attention = 3, .rank_mlp = 2};
  return s;
}

ModelSpec teacher_spec(int64_t layers, int64_t vocab = 97) {
  ModelSpec s;
  s.model = {.vocab = vocab,
             .d_model = 32,
             .n_heads = 4,
             .n_kv_heads = 4,
             .ffn = 48,
             .max_seq_len = 64,
             .tied_head = true};
  s.recursion = {.block_layers = layers, .loops = 1};
  return s;
}

TrainingLoss kd_three_exits() {
  TrainingLoss loss;
  loss.exit_loops = {1, 2, 3};
  loss.exit_weights = {0.1, 0.1, 1.0};
  loss.self_distill = true;
  loss.teacher = true;
  loss.temperature = 2.0;
  loss.alpha = 0.5;
  return loss;
}

struct Batch {
  std::vector<int32_t> tokens, targets;
};

Batch make_batch(int64_t M, int64_t vocab) {
  Batch b{std::vector<int32_t>(M), std::vector<int32_t>(M)};
  for (int64_t i = 0; i < M; ++i) {
    b.tokens[i] = static_cast<int32_t>((i * 31 + 7) % vocab);
    b.targets[i] =
        i % 9 == 4 ? RecursiveModel::kIgnoreIndex : static_cast<int32_t>((i * 17) % vocab);
  }
  return b;
}

int64_t planned(const RecursiveModel& m) { return m.activation_bytes() + m.scratch_bytes(); }

// Must-show 2. What KD + 3 exits add over the plain model: per token, each intermediate exit's
// normed state, its gradient and its norm statistics (O(D), like any activation); independent
// of the tokens, the loss scratch of three [chunk, V] blocks. Nothing of size tokens x V.
TEST(EarlyExitMemory, ExtraMemoryIsBoundedByChunkTimesVocab) {
  const int64_t V = 4096, chunk = 16, D = 24, E = 3;
  const ModelSpec s = student_spec(V);
  struct Row {
    int64_t N, T, extra, loss_scratch;
  };
  std::vector<Row> rows;
  for (auto [N, T] : {std::pair<int64_t, int64_t>{1, 16}, {4, 64}}) {
    const ModelCapacity cap{.max_batch = N, .max_seq = T, .head_chunk = chunk};
    RecursiveModel plain(s, cap);
    RecursiveModel kd(s, cap, kd_three_exits());
    const int64_t M = N * T;
    const int64_t extra = planned(kd) - planned(plain);
    // Per token and intermediate exit: h [D], dh [D], rstd [1] floats (64-byte aligned tensors).
    const int64_t per_token = (E - 1) * (2 * D + 1) * 4;
    const int64_t loss_scratch = extra - per_token * M;
    rows.push_back({N, T, extra, loss_scratch});
    std::printf(
        "N x T = %3ld x %3ld (M = %4ld): KD + 3 exits add %8ld bytes = %ld per token x M "
        "+ %ld of loss scratch; M x V logits alone would be %ld\n",
        static_cast<long>(N), static_cast<long>(T), static_cast<long>(M), static_cast<long>(extra),
        static_cast<long>(per_token), static_cast<long>(loss_scratch),
        static_cast<long>(M * V * 4));
    // The loss scratch grows from one [chunk, V] block (CE) to three (exit, teacher, final).
    EXPECT_NEAR(static_cast<double>(loss_scratch), 2.0 * chunk * V * 4, 64.0 * 3 * E);
  }
  // The part that is not per token does not move with N x T (16 -> 256 tokens).
  EXPECT_NEAR(static_cast<double>(rows[0].loss_scratch), static_cast<double>(rows[1].loss_scratch),
              64.0 * 3 * E);
  RecordProperty("loss_scratch_bytes", std::to_string(rows[1].loss_scratch));
}

// The teacher, forward only, keeps one stash and two residual buffers whatever its depth, and no
// gradients or backward scratch.
TEST(EarlyExitMemory, ForwardOnlyTeacherPlansOneStash) {
  const ModelCapacity cap{.max_batch = 2, .max_seq = 32, .forward_only = true};
  RecursiveModel shallow(teacher_spec(2), cap), deep(teacher_spec(8), cap);
  EXPECT_EQ(shallow.activation_bytes(), deep.activation_bytes());
  EXPECT_EQ(shallow.scratch_bytes(), deep.scratch_bytes());
  EXPECT_FALSE(deep.params().has_grads());
  ModelCapacity train_cap = cap;
  train_cap.forward_only = false;
  RecursiveModel trained(teacher_spec(8), train_cap);
  std::printf("8-layer teacher: forward only %ld + %ld bytes, training %ld + %ld bytes\n",
              static_cast<long>(deep.activation_bytes()), static_cast<long>(deep.scratch_bytes()),
              static_cast<long>(trained.activation_bytes()),
              static_cast<long>(trained.scratch_bytes()));
  EXPECT_LT(deep.activation_bytes() * 4, trained.activation_bytes());
}

TEST(Teacher, ForwardOnlyComputesWhatTheTrainingModelComputes) {
  const ModelSpec s = teacher_spec(3);
  const int64_t N = 2, T = 11;
  RecursiveModel fwd(s, {.max_batch = N, .max_seq = T, .forward_only = true});
  RecursiveModel full(s, {.max_batch = N, .max_seq = T});
  full.params().init({.seed = 3});
  std::memcpy(fwd.params().values_arena().base(), full.params().values_arena().base(),
              static_cast<size_t>(full.params().values_arena().total_bytes()));
  const Batch b = make_batch(N * T, s.model.vocab);
  std::vector<float> a(N * T * s.model.vocab), c(a.size());
  fwd.logits(b.tokens.data(), N, T, a.data());
  full.logits(b.tokens.data(), N, T, c.data());
  EXPECT_EQ(a, c);
  EXPECT_EQ(fwd.loss(b.tokens.data(), b.targets.data(), N, T),
            full.loss(b.tokens.data(), b.targets.data(), N, T));
  EXPECT_THROW(fwd.forward_backward(b.tokens.data(), b.targets.data(), N, T), Error);
}

// Exits with weight 0 and no other term leave the plain CE gradient; a weight on an early exit
// changes the block's gradient but not which parameters get one.
TEST(EarlyExit, ZeroWeightExitsGiveThePlainGradient) {
  const ModelSpec s = student_spec();
  const int64_t N = 2, T = 9;
  RecursiveModel plain(s, {.max_batch = N, .max_seq = T, .head_chunk = 4});
  TrainingLoss zero;
  zero.exit_loops = {1, 2, 3};
  zero.exit_weights = {0.0, 0.0, 1.0};
  RecursiveModel exits(s, {.max_batch = N, .max_seq = T, .head_chunk = 4}, zero);
  plain.params().init({.seed = 5, .lora_b_zero = false});
  exits.params().init({.seed = 5, .lora_b_zero = false});
  const Batch b = make_batch(N * T, s.model.vocab);
  plain.params().zero_grads();
  exits.params().zero_grads();
  const double l0 = plain.forward_backward(b.tokens.data(), b.targets.data(), N, T);
  const double l1 = exits.forward_backward(b.tokens.data(), b.targets.data(), N, T);
  EXPECT_NEAR(l0, l1, 1e-6 * l0);
  EXPECT_NEAR(exits.last_losses().exit_ce[2], l0, 1e-6 * l0);
  EXPECT_GT(exits.last_losses().exit_ce[0], 0.0);  // scored, though not counted
  const ParamRegistry& reg = plain.params().registry();
  for (int i = 0; i < reg.size(); ++i)
    for (int64_t j = 0; j < plain.params().numel(i); ++j)
      ASSERT_NEAR(exits.params().grad(i)[j], plain.params().grad(i)[j], 1e-5) << reg[i].name;
}

// With exits at every loop, the final norm's gradient is complete only after the first loop's
// exit: the hook must not report it earlier, and everything it reports stays unchanged.
TEST(EarlyExit, GradReadyHookStaysTruthful) {
  const ModelSpec s = student_spec();
  TrainingLoss loss = kd_three_exits();
  loss.teacher = false;
  RecursiveModel model(s, {.max_batch = 2, .max_seq = 9}, loss);
  model.params().init({.seed = 5, .lora_b_zero = false});
  const ParameterSet& p = model.params();
  const ParamRegistry& reg = p.registry();
  const std::vector<int64_t>& ready = model.grad_ready_after();
  EXPECT_EQ(ready[reg.index("final_norm.weight")], 1);  // exit 1 reads resid[2]: after hook(1)
  std::vector<std::vector<float>> snapshot(reg.size());
  model.set_grad_ready_hook([&](int64_t v) {
    for (int i = 0; i < reg.size(); ++i)
      if (ready[i] >= v && snapshot[i].empty())
        snapshot[i].assign(p.grad(i), p.grad(i) + p.numel(i));
  });
  const Batch b = make_batch(18, s.model.vocab);
  model.forward_backward(b.tokens.data(), b.targets.data(), 2, 9);
  for (int i = 0; i < reg.size(); ++i) {
    ASSERT_FALSE(snapshot[i].empty()) << reg[i].name;
    EXPECT_EQ(std::memcmp(snapshot[i].data(), p.grad(i), p.numel(i) * sizeof(float)), 0)
        << reg[i].name << " changed after the hook said it was final";
  }
}

// train: lora. Frozen tensors get no gradient and no update; the LoRA gets the gradient it gets
// when everything trains.
TEST(Freezing, LoraScopeUpdatesOnlyTheLora) {
  const ModelSpec s = student_spec();
  const int64_t N = 2, T = 9;
  TrainingLoss all_loss = kd_three_exits(), lora_loss = kd_three_exits();
  all_loss.teacher = lora_loss.teacher = false;
  lora_loss.train = TrainScope::lora;
  RecursiveModel all(s, {.max_batch = N, .max_seq = T}, all_loss);
  RecursiveModel lora(s, {.max_batch = N, .max_seq = T}, lora_loss);
  all.params().init({.seed = 8, .lora_b_zero = false});
  lora.params().init({.seed = 8, .lora_b_zero = false});
  const Batch b = make_batch(N * T, s.model.vocab);
  all.params().zero_grads();
  lora.params().zero_grads();
  all.forward_backward(b.tokens.data(), b.targets.data(), N, T);
  lora.forward_backward(b.tokens.data(), b.targets.data(), N, T);
  const ParamRegistry& reg = lora.params().registry();
  std::vector<std::vector<float>> before;
  for (int i = 0; i < reg.size(); ++i)
    before.emplace_back(lora.params().value(i), lora.params().value(i) + lora.params().numel(i));
  AdamW(lora.params(), {.lr = 1e-2}).step();
  int trainable = 0;
  for (int i = 0; i < reg.size(); ++i) {
    const bool is_lora = reg[i].kind == ParamKind::lora_a || reg[i].kind == ParamKind::lora_b;
    EXPECT_EQ(reg[i].trainable, is_lora) << reg[i].name;
    trainable += is_lora;
    bool grad_nonzero = false, moved = false;
    for (int64_t j = 0; j < lora.params().numel(i); ++j) {
      grad_nonzero |= lora.params().grad(i)[j] != 0.0f;
      moved |= lora.params().value(i)[j] != before[i][j];
      if (is_lora)
        ASSERT_NEAR(lora.params().grad(i)[j], all.params().grad(i)[j], 1e-6) << reg[i].name;
    }
    EXPECT_EQ(grad_nonzero, is_lora) << reg[i].name;
    EXPECT_EQ(moved, is_lora) << reg[i].name;
  }
  EXPECT_GT(trainable, 0);
}

// train: head_lora. Only the exits' head adapters train; a plain model (rrt eval) built from
// the same spec ignores them.
TEST(Freezing, HeadLoraScopeUpdatesOnlyTheHeadAdapters) {
  ModelSpec s = student_spec();
  s.exit_head = {.lora_rank = 2, .loops = {1, 2}};
  const int64_t N = 2, T = 9;
  TrainingLoss loss = kd_three_exits();
  loss.teacher = false;
  loss.train = TrainScope::head_lora;
  RecursiveModel model(s, {.max_batch = N, .max_seq = T}, loss);
  model.params().init({.seed = 8, .lora_b_zero = false});
  const Batch b = make_batch(N * T, s.model.vocab);
  model.params().zero_grads();
  model.forward_backward(b.tokens.data(), b.targets.data(), N, T);
  const ParamRegistry& reg = model.params().registry();
  int adapters = 0;
  for (int i = 0; i < reg.size(); ++i) {
    const bool adapter = reg[i].name.rfind("exit.", 0) == 0;
    adapters += adapter;
    EXPECT_EQ(reg[i].trainable, adapter) << reg[i].name;
    bool nonzero = false;
    for (int64_t j = 0; j < model.params().numel(i); ++j) nonzero |= model.params().grad(i)[j] != 0;
    EXPECT_EQ(nonzero, adapter) << reg[i].name;
  }
  EXPECT_EQ(adapters, 4);
  EXPECT_EQ(reg[reg.index("exit.2.head_lora.B")].shape, (Shape{s.model.vocab, 2}));

  RecursiveModel plain(s, {.max_batch = N, .max_seq = T});
  ModelSpec without = s;
  without.exit_head = {};
  RecursiveModel no_adapters(without, {.max_batch = N, .max_seq = T});
  plain.params().init({.seed = 8, .lora_b_zero = false});
  no_adapters.params().init({.seed = 8, .lora_b_zero = false});
  EXPECT_EQ(plain.loss(b.tokens.data(), b.targets.data(), N, T),
            no_adapters.loss(b.tokens.data(), b.targets.data(), N, T));
}

TEST(Teacher, MisSetTeachersAreRefused) {
  const ModelSpec s = student_spec();
  RecursiveModel student(s, {.max_batch = 2, .max_seq = 9}, kd_three_exits());
  const Batch b = make_batch(18, s.model.vocab);
  try {
    student.forward_backward(b.tokens.data(), b.targets.data(), 2, 9);
    ADD_FAILURE() << "no teacher set";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("set_teacher"), std::string::npos) << e.what();
  }
  RecursiveModel other_vocab(teacher_spec(2, 98),
                             {.max_batch = 2, .max_seq = 9, .forward_only = true});
  try {
    student.set_teacher(&other_vocab);
    ADD_FAILURE() << "vocab mismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "distill.teacher");
    EXPECT_NE(std::string(e.what()).find("98"), std::string::npos) << e.what();
  }
  RecursiveModel small(teacher_spec(2), {.max_batch = 1, .max_seq = 9, .forward_only = true});
  EXPECT_THROW(student.set_teacher(&small), Error);
  RecursiveModel plain(s, {.max_batch = 2, .max_seq = 9});
  RecursiveModel teacher(teacher_spec(2), {.max_batch = 2, .max_seq = 9, .forward_only = true});
  EXPECT_THROW(plain.set_teacher(&teacher), Error);  // its loss has no KD term
}

}  // namespace
}  // namespace rrt
