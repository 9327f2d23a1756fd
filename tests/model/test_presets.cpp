// The named model presets (model/presets.h): every name resolves to a valid spec of the shape
// its documentation gives, the functions and the names agree, and an unknown name is an error
// that lists the known ones.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "model/config.h"
#include "model/presets.h"

namespace rrt::presets {
namespace {

TEST(Presets, EveryNameResolvesToAValidSpec) {
  ASSERT_GE(preset_names().size(), 8u);
  for (const std::string& name : preset_names()) {
    SCOPED_TRACE(name);
    const ModelSpec s = preset(name);
    EXPECT_NO_THROW(validate(s));
    EXPECT_GT(s.positions(), 0);
  }
}

TEST(Presets, TinyRelaxedShapes) {
  const ModelSpec llama = preset("tiny-relaxed");
  EXPECT_EQ(llama.model.family, Family::llama);
  EXPECT_EQ(llama.model.vocab, 61);
  EXPECT_EQ(llama.model.d_model, 24);
  EXPECT_EQ(llama.model.n_heads, 6);
  EXPECT_EQ(llama.model.n_kv_heads, 2);
  EXPECT_EQ(llama.model.ffn, 40);
  EXPECT_EQ(llama.model.max_seq_len, 48);
  EXPECT_EQ(llama.recursion.block_layers, 2);
  EXPECT_EQ(llama.recursion.loops, 3);
  EXPECT_EQ(llama.lora.rank_attention, 3);
  EXPECT_EQ(llama.lora.rank_mlp, 2);
  EXPECT_EQ(tiny_relaxed(Family::llama, false, 2).recursion.loops, 2);

  const ModelSpec gemma = preset("tiny-relaxed-gemma");
  EXPECT_EQ(gemma.model.family, Family::gemma);
  EXPECT_EQ(gemma.model.n_kv_heads, 1);
  EXPECT_EQ(gemma.model.head_dim, 8);

  const ModelSpec neox = preset("tiny-relaxed-neox");
  EXPECT_EQ(neox.model.family, Family::neox);
  EXPECT_TRUE(neox.model.parallel_residual);
  EXPECT_TRUE(neox.recursion.per_loop_norms);
  EXPECT_EQ(neox.model.n_heads, 3);
  EXPECT_FALSE(preset("tiny-relaxed-neox-sequential").model.parallel_residual);

  // Gemma 3: local RoPE on positions 0, 1, 3, 4 (the pattern of 3 over B = 2 tied layers), so a
  // block layer is local at one loop and global at another.
  const ModelSpec g3 = preset("tiny-relaxed-gemma3");
  EXPECT_TRUE(g3.model.sandwich_norm);
  EXPECT_TRUE(g3.model.qk_norm);
  EXPECT_NE(g3.model.query_scale(), 1.0);
  for (int64_t l = 0; l < g3.positions(); ++l) EXPECT_EQ(g3.model.local_rope_at(l), l % 3 != 2);
  EXPECT_FALSE(preset("tiny-relaxed-gemma2").model.local_rope_at(0));
  const ModelSpec g1b = preset("gemma3-1b");
  EXPECT_EQ(g1b.positions(), 26);
  EXPECT_EQ(g1b.model.window_at(5), 0);
  EXPECT_EQ(g1b.model.window_at(24), 512);
  EXPECT_TRUE(g1b.model.local_rope_at(24));
  EXPECT_FALSE(g1b.model.local_rope_at(23));
}

TEST(Presets, BenchAndTinyLlamaShapes) {
  const ModelSpec b = preset("bench");
  EXPECT_EQ(b.model.d_model, 512);
  EXPECT_EQ(b.model.vocab, 8192);
  EXPECT_EQ(b.model.ffn, 1408);
  EXPECT_EQ(b.model.max_seq_len, 256);
  EXPECT_EQ(b.recursion.block_layers * b.recursion.loops, 8);
  EXPECT_EQ(b.lora.rank_attention, 32);
  EXPECT_EQ(preset("bench-small").model.d_model, 128);

  const ModelSpec t = preset("tinyllama");
  EXPECT_EQ(t.model.d_model, 2048);
  EXPECT_EQ(t.model.n_heads, 32);
  EXPECT_EQ(t.model.n_kv_heads, 4);
  EXPECT_EQ(t.model.ffn, 5632);
  EXPECT_EQ(t.recursion.block_layers, 11);
  EXPECT_EQ(t.recursion.loops, 2);
  EXPECT_EQ(t.lora.rank_mlp, 64);
  const ModelSpec plain = preset("tinyllama-plain");
  EXPECT_EQ(plain.recursion.block_layers, 22);
  EXPECT_EQ(plain.recursion.loops, 1);
  EXPECT_EQ(plain.positions(), t.positions());
}

TEST(Presets, UnknownNameListsTheKnownOnes) {
  try {
    preset("tiny");
    ADD_FAILURE() << "an unknown preset was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'tiny'"), std::string::npos) << what;
    EXPECT_NE(what.find("tiny-relaxed"), std::string::npos) << what;
    EXPECT_NE(what.find("tinyllama"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace rrt::presets
