// The KV-cached engine against the full-sequence forward: prefill then decode, with rows of
// several sequences and several stages in the same engine calls, reproduce every exit's logits
// of RecursiveModel::forward_loop_ends / exit_logits (1e-5 of their magnitude), for every
// family, also with sliding windows and soft-capped scores; KV propagation writes exactly the
// skipped positions, with a direct computation's values; copy_kv copies the last computed loop.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tests/inference/tiny_models.h"
#include "tests/model/compare.h"

namespace rrt {
namespace {

using inference::CpuEngine;
using inference::StageRow;

std::vector<int32_t> sequence(int64_t T, int64_t V, int64_t salt) {
  std::vector<int32_t> s(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) s[t] = static_cast<int32_t>((t * 13 + salt * 7 + 3) % V);
  return s;
}

class EngineFamilies : public ::testing::TestWithParam<testing::FamilyCase> {};

// Two sequences (lengths 9 and 13, prompts 4 and 6) share the engine calls; sequence 1 runs one
// stage behind sequence 0, so most calls mix stages (and so LoRA positions). After each stage
// the exit logits of every row are compared with the reference's.
void prefill_and_decode_match_the_full_forward(const ModelSpec& spec) {
  testing::TinyModel tm = testing::make_tiny(spec, 2, 8);
  CpuEngine& e = *tm.engine;
  const int64_t V = spec.model.vocab, D = spec.model.d_model, K = spec.recursion.loops;
  const std::vector<int64_t> lengths = {9, 13}, prompts = {4, 6};
  std::vector<std::vector<int32_t>> seqs;
  std::vector<std::vector<std::vector<float>>> ref(2);  // [seq][loop-1] -> [T, V]
  for (int s = 0; s < 2; ++s) {
    seqs.push_back(sequence(lengths[s], V, s));
    for (int64_t k = 1; k <= K; ++k)
      ref[s].push_back(testing::reference_exit_logits(*tm.model, seqs[s], k));
  }
  double worst = 0;
  std::vector<float> logits(static_cast<size_t>(8 * V));
  auto check = [&](int s, int64_t pos, int64_t loop, const float* row_logits) {
    std::vector<float> want(ref[s][loop - 1].begin() + pos * V,
                            ref[s][loop - 1].begin() + (pos + 1) * V);
    const double err = testing::relative_max_error(row_logits, want);
    worst = std::max(worst, err);
    EXPECT_LE(err, 1e-5) << "sequence " << s << " position " << pos << " exit " << loop;
  };
  // Prefill both prompts, each through all stages.
  for (int s = 0; s < 2; ++s) {
    std::vector<float> resid(static_cast<size_t>(prompts[s] * D));
    e.embed(seqs[s].data(), prompts[s], resid.data());
    std::vector<StageRow> rows(static_cast<size_t>(prompts[s]));
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t t = 0; t < prompts[s]; ++t)
        rows[t] = {s, static_cast<int32_t>(t), static_cast<int32_t>(k)};
      e.run_stage(rows.data(), prompts[s], resid.data());
      e.exit_logits(k + 1, resid.data(), prompts[s], logits.data());
      for (int64_t t = 0; t < prompts[s]; ++t) check(s, t, k + 1, logits.data() + t * V);
    }
  }
  // Decode: one token per sequence in flight; sequence 1 starts one call later.
  std::vector<int64_t> pos = {prompts[0], prompts[1]}, stage = {0, -1};
  std::vector<std::vector<float>> state(2, std::vector<float>(static_cast<size_t>(D)));
  e.embed(&seqs[0][pos[0]], 1, state[0].data());
  int calls = 0;
  while (pos[0] < lengths[0] || pos[1] < lengths[1]) {
    std::vector<StageRow> rows;
    std::vector<int> who;
    for (int s = 0; s < 2; ++s) {
      if (stage[s] < 0) {  // starts now
        stage[s] = 0;
        e.embed(&seqs[s][pos[s]], 1, state[s].data());
      }
      if (pos[s] < lengths[s]) {
        rows.push_back({s, static_cast<int32_t>(pos[s]), static_cast<int32_t>(stage[s])});
        who.push_back(s);
      }
    }
    std::vector<float> resid(rows.size() * static_cast<size_t>(D));
    for (size_t i = 0; i < who.size(); ++i)
      std::memcpy(resid.data() + i * D, state[who[i]].data(), static_cast<size_t>(D) * 4);
    e.run_stage(rows.data(), static_cast<int64_t>(rows.size()), resid.data());
    ++calls;
    for (size_t i = 0; i < who.size(); ++i) {
      const int s = who[i];
      std::memcpy(state[s].data(), resid.data() + i * D, static_cast<size_t>(D) * 4);
      e.exit_logits(stage[s] + 1, state[s].data(), 1, logits.data());
      check(s, pos[s], stage[s] + 1, logits.data());
      if (++stage[s] == K) {
        stage[s] = 0;
        if (++pos[s] < lengths[s]) e.embed(&seqs[s][pos[s]], 1, state[s].data());
      }
    }
  }
  ::testing::Test::RecordProperty("worst_relative_error", std::to_string(worst));
  EXPECT_GT(calls, 0);
}

TEST_P(EngineFamilies, PrefillAndDecodeMatchTheFullSequenceForwardAtEveryExit) {
  const testing::FamilyCase fc = GetParam();
  prefill_and_decode_match_the_full_forward(testing::tiny_spec(fc.family, fc.parallel));
}

// Sliding windows and soft-capping (Gemma 2/3): decode reads only a window's last keys of the
// cache and caps its scores as the full forward does, and every exit's logits take the final
// soft-cap as the model's exits do. The window pattern (3 entries over B = 2,
// K = 3) gives a block layer different windows in different loops, so calls that mix stages run
// one decode attention per group. Sequences of 9 and 13 tokens with a window of 3 cut most rows.
TEST_P(EngineFamilies, SlidingWindowAndSoftcapMatchTheFullForward) {
  const testing::FamilyCase fc = GetParam();
  ModelSpec spec = testing::tiny_spec(fc.family, fc.parallel);
  spec.model.sliding_window = 3;
  spec.model.sliding_layers = {true, false, true};
  spec.model.attn_logit_softcapping = 0.2;
  spec.model.final_logit_softcapping = 1.0;  // every exit's head, in the engine's head_rows too
  prefill_and_decode_match_the_full_forward(spec);
}

INSTANTIATE_TEST_SUITE_P(Families, EngineFamilies, ::testing::ValuesIn(testing::kFamilies),
                         [](const auto& info) { return std::string(info.param.name); });

// Sequence sharing: stages are B consecutive unrolled positions whose block layers differ per
// stage, so the tied projection runs per group; only the last loop is an exit.
TEST(Engine, SequenceSharingMatchesTheFullForward) {
  ModelSpec spec = testing::tiny_spec(Family::llama, false, 2);
  spec.recursion.sharing = Sharing::sequence;
  testing::TinyModel tm = testing::make_tiny(spec, 1, 16);
  const int64_t V = spec.model.vocab, D = spec.model.d_model, T = 10;
  const std::vector<int32_t> seq = sequence(T, V, 5);
  const std::vector<float> ref = testing::reference_exit_logits(*tm.model, seq, 2);
  EXPECT_FALSE(tm.engine->exits_before_last());
  std::vector<float> resid(static_cast<size_t>(T * D)), logits(static_cast<size_t>(T * V));
  tm.engine->embed(seq.data(), T, resid.data());
  std::vector<StageRow> rows(static_cast<size_t>(T));
  for (int32_t k = 0; k < 2; ++k) {
    for (int32_t t = 0; t < T; ++t) rows[t] = {0, t, k};
    tm.engine->run_stage(rows.data(), T, resid.data());
  }
  tm.engine->exit_logits(2, resid.data(), T, logits.data());
  EXPECT_LE(testing::relative_max_error(logits.data(), ref), 1e-5);
}

// k and v of unrolled position l for hidden state h at sequence position pos, computed
// directly in double from the registry's tensors: RMSNorm, W x + s B (A x), RoPE.
std::vector<double> direct_kv(const ModelSpec& spec, const ParameterSet& p, int64_t l,
                              const float* h, int64_t pos, bool key) {
  const ModelConfig& m = spec.model;
  const Position at = position_of(spec.recursion, l);
  const int64_t D = m.d_model, kvd = m.kv_dim(), Dh = m.dh();
  const float* w = p.value(ParamRegistry::norm_name(at.layer, at.loop, true, false));
  double ms = 0;
  for (int64_t i = 0; i < D; ++i) ms += static_cast<double>(h[i]) * h[i];
  const double rstd = 1.0 / std::sqrt(ms / static_cast<double>(D) + m.norm_eps);
  std::vector<double> xn(static_cast<size_t>(D));
  for (int64_t i = 0; i < D; ++i) xn[i] = h[i] * rstd * w[i];
  const Proj proj = key ? Proj::k : Proj::v;
  const float* W = p.value(ParamRegistry::block_name(at.layer, proj));
  const float* A = p.value(ParamRegistry::lora_name(at.loop, at.layer, proj, true));
  const float* B = p.value(ParamRegistry::lora_name(at.loop, at.layer, proj, false));
  const int64_t R = spec.lora_rank(proj);
  const double s = spec.lora_scale(proj);
  std::vector<double> u(static_cast<size_t>(R), 0.0), y(static_cast<size_t>(kvd), 0.0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < D; ++i) u[r] += A[r * D + i] * xn[i];
  for (int64_t o = 0; o < kvd; ++o) {
    for (int64_t i = 0; i < D; ++i) y[o] += W[o * D + i] * xn[i];
    for (int64_t r = 0; r < R; ++r) y[o] += s * B[o * R + r] * u[r];
  }
  if (key) {
    const int64_t half = m.rot_dim() / 2;
    for (int64_t hd = 0; hd < m.n_kv_heads; ++hd)
      for (int64_t i = 0; i < half; ++i) {
        const double angle =
            static_cast<double>(pos) *
            std::pow(m.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(2 * half));
        double& a = y[hd * Dh + i];
        double& b = y[hd * Dh + i + half];
        const double a0 = a, b0 = b;
        a = a0 * std::cos(angle) - b0 * std::sin(angle);
        b = b0 * std::cos(angle) + a0 * std::sin(angle);
      }
  }
  return y;
}

// Two tokens exit in one propagate_kv call: slot 0's after loop 1, slot 1's after loop 2 (K = 3).
// Exactly their skipped positions change, to the direct computation's values (1e-5); every other
// entry of the cache stays as it was.
TEST(Engine, KvPropagationFillsExactlyTheSkippedPositions) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  testing::TinyModel tm = testing::make_tiny(spec, 2, 8);
  CpuEngine& e = *tm.engine;
  const int64_t V = spec.model.vocab, D = spec.model.d_model, K = 3, B = 2;
  const int64_t kvd = spec.model.kv_dim(), P = 5;
  std::vector<std::vector<float>> state(2, std::vector<float>(static_cast<size_t>(D)));
  for (int32_t s = 0; s < 2; ++s) {
    const std::vector<int32_t> seq = sequence(P + 1, V, s);
    std::vector<float> resid(static_cast<size_t>(P * D));
    e.embed(seq.data(), P, resid.data());
    std::vector<StageRow> rows(static_cast<size_t>(P));
    for (int32_t k = 0; k < K; ++k) {
      for (int32_t t = 0; t < P; ++t) rows[t] = {s, t, k};
      e.run_stage(rows.data(), P, resid.data());
    }
    // The next token runs loops 1 (slot 0) or 1..2 (slot 1), then exits.
    e.embed(&seq[P], 1, state[s].data());
    for (int32_t k = 0; k <= s; ++k) {
      const StageRow row{s, static_cast<int32_t>(P), k};
      e.run_stage(&row, 1, state[s].data());
    }
  }
  const inference::KvCache before = e.cache();
  const StageRow exited[2] = {{0, static_cast<int32_t>(P), 0}, {1, static_cast<int32_t>(P), 1}};
  std::vector<float> resid(static_cast<size_t>(2 * D));
  std::memcpy(resid.data(), state[0].data(), static_cast<size_t>(D) * 4);
  std::memcpy(resid.data() + D, state[1].data(), static_cast<size_t>(D) * 4);
  e.propagate_kv(exited, 2, resid.data());

  int64_t filled = 0, unchanged = 0;
  double worst = 0;
  for (int64_t l = 0; l < K * B; ++l)
    for (int32_t s = 0; s < 2; ++s)
      for (int64_t t = 0; t <= P; ++t) {
        const bool skipped = t == P && l / B > s;
        for (bool key : {true, false}) {
          const float* now = key ? e.cache().key(l, s, t) : e.cache().value(l, s, t);
          const float* was = key ? before.key(l, s, t) : before.value(l, s, t);
          if (!skipped) {
            EXPECT_EQ(std::memcmp(now, was, static_cast<size_t>(kvd) * 4), 0)
                << "position " << l << " slot " << s << " token " << t << " changed";
            ++unchanged;
            continue;
          }
          const std::vector<double> want =
              direct_kv(spec, tm.model->params(), l, state[s].data(), P, key);
          double err = 0, mag = 0;
          for (int64_t i = 0; i < kvd; ++i) {
            err = std::max(err, std::fabs(now[i] - want[i]));
            mag = std::max(mag, std::fabs(want[i]));
          }
          worst = std::max(worst, err / mag);
          EXPECT_LE(err / mag, 1e-5) << "position " << l << " slot " << s;
          ++filled;
        }
      }
  // Slot 0 skipped loops 2 and 3 (4 positions), slot 1 loop 3 (2 positions); keys and values.
  EXPECT_EQ(filled, 2 * (4 + 2));
  RecordProperty("worst_relative_error", std::to_string(worst));
  EXPECT_GT(unchanged, 0);
}

// Exits with head adapters (exit.{k}.head_lora): one head call over rows at different loops
// gives each row its own exit's logits, as RecursiveModel::exit_logits computes them.
TEST(Engine, OneHeadCallServesRowsOfEveryExit) {
  ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  spec.exit_head = {.lora_rank = 2, .loops = {1, 2}};
  testing::TinyModel tm = testing::make_tiny(spec, 1, 8);
  const int64_t V = spec.model.vocab, D = spec.model.d_model, T = 6;
  const std::vector<int32_t> seq = sequence(T, V, 2);
  tm.model->forward_loop_ends(seq.data(), 1, T);
  // Row t takes the residual after loop loops[t] (grouped by loop).
  const int32_t loops[T] = {1, 1, 2, 2, 3, 3};
  std::vector<float> resid(static_cast<size_t>(T * D)), want(static_cast<size_t>(V)),
      h(static_cast<size_t>(D)), got(static_cast<size_t>(T * V));
  for (int64_t t = 0; t < T; ++t)
    std::memcpy(resid.data() + t * D, tm.model->loop_end_residual(loops[t]) + t * D,
                static_cast<size_t>(D) * 4);
  tm.engine->exit_logits(loops, resid.data(), T, got.data());
  for (int64_t t = 0; t < T; ++t) {
    tm.model->exit_logits(loops[t], resid.data() + t * D, 1, h.data(), want.data());
    EXPECT_LE(testing::relative_max_error(got.data() + t * V, want), 1e-5) << "row " << t;
  }
  // The adapters matter: exit 1's logits differ from the bare head's (exit 3 has none).
  std::vector<float> bare(static_cast<size_t>(V));
  tm.engine->exit_logits(3, resid.data(), 1, bare.data());
  EXPECT_GT(testing::relative_max_error(got.data(), bare), 1e-3);
}

TEST(Engine, CopyKvCopiesTheLastComputedLoop) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  testing::TinyModel tm = testing::make_tiny(spec, 1, 4);
  CpuEngine& e = *tm.engine;
  const int64_t D = spec.model.d_model, kvd = spec.model.kv_dim();
  std::vector<float> h(static_cast<size_t>(D));
  const int32_t tok = 7;
  e.embed(&tok, 1, h.data());
  const StageRow row{0, 0, 0};
  e.run_stage(&row, 1, h.data());
  e.copy_kv(row);
  for (int64_t s = 1; s < 3; ++s)
    for (int64_t j = 0; j < 2; ++j) {
      EXPECT_EQ(std::memcmp(e.cache().key(s * 2 + j, 0, 0), e.cache().key(j, 0, 0), kvd * 4), 0);
      EXPECT_EQ(std::memcmp(e.cache().value(s * 2 + j, 0, 0), e.cache().value(j, 0, 0), kvd * 4),
                0);
    }
}

// run_stage_saturation runs the same stage as run_stage (the states give the same logits) and
// scores each row with the cosine similarity of its state before and after, through the final
// RMSNorm: cos(a * w, b * w), the norm's per-row scale cancelling; and it hands out each row's
// normed state after the stage (the classifier exit's features).
TEST(Engine, SaturationScoreIsTheCosineOfTheNormedStatesAroundTheStage) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  ASSERT_FALSE(spec.model.norm_unit_offset);
  testing::TinyModel tm = testing::make_tiny(spec, 1, 4);
  CpuEngine& e = *tm.engine;
  const int64_t D = spec.model.d_model, V = spec.model.vocab, n = 4;
  const float* w = inference::bind_weights(spec, tm.model->params()).final_norm;
  const std::vector<int32_t> tokens = sequence(n, V, 5);
  const std::vector<int32_t> states = {0, 1, 2, 3};
  e.reserve_states(n);
  e.embed_states(tokens.data(), states.data(), n);
  std::vector<float> before(static_cast<size_t>(n * D)), after, logits(static_cast<size_t>(n * V));
  e.embed(tokens.data(), n, before.data());
  for (int32_t stage = 0; stage < 2; ++stage) {
    std::vector<StageRow> rows;
    for (int32_t p = 0; p < n; ++p) rows.push_back({0, p, stage});
    e.run_stage_saturation(rows.data(), states.data(), n);
    after = before;
    e.run_stage(rows.data(), n, after.data());  // the same KV again: same values
    for (int64_t i = 0; i < n; ++i) {
      double ab = 0, aa = 0, bb = 0;
      for (int64_t d = 0; d < D; ++d) {
        const double x = before[i * D + d] * w[d], y = after[i * D + d] * w[d];
        ab += x * y;
        aa += x * x;
        bb += y * y;
      }
      EXPECT_NEAR(e.stage_similarity()[i], ab / std::sqrt(aa * bb), 1e-5)
          << "stage " << stage << " row " << i;
      // The classifier exit's features: the state after the stage through the final norm.
      double ms = 0;
      for (int64_t d = 0; d < D; ++d) ms += double(after[i * D + d]) * after[i * D + d];
      const double rstd = 1 / std::sqrt(ms / D + spec.model.norm_eps);
      for (int64_t d = 0; d < D; ++d)
        EXPECT_NEAR(e.stage_normed_states()[i * D + d], after[i * D + d] * rstd * w[d], 1e-5)
            << "stage " << stage << " row " << i << " dim " << d;
    }
    const std::vector<int32_t> loops(static_cast<size_t>(n), stage + 1);
    e.exit_heads(loops.data(), states.data(), n, true);
    const std::vector<float> got(e.head_logits(), e.head_logits() + n * V);
    e.exit_logits(stage + 1, after.data(), n, logits.data());
    EXPECT_LE(testing::relative_max_error(got.data(), logits), 1e-6) << "stage " << stage;
    before = after;
  }
}

TEST(Engine, RejectsRowsOutsideItsCapacity) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 2);
  testing::TinyModel tm = testing::make_tiny(spec, 1, 2);
  std::vector<float> h(static_cast<size_t>(3 * spec.model.d_model));
  const StageRow bad_slot{1, 0, 0}, bad_stage{0, 0, 2};
  EXPECT_THROW(tm.engine->run_stage(&bad_slot, 1, h.data()), Error);
  EXPECT_THROW(tm.engine->run_stage(&bad_stage, 1, h.data()), Error);
  const StageRow three[3] = {};
  EXPECT_THROW(tm.engine->run_stage(three, 3, h.data()), Error);
}

}  // namespace
}  // namespace rrt
