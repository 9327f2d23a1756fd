// Document-aware batches (data.document_mask, issue 25) through the whole model: a packed
// sequence whose documents end in EOS computes, for every document, the logits and loss it
// computes as a sequence of its own, and the packed step's gradients are the token-weighted sum
// of the documents' (model/documents.h; the attention op's own checks are tests/ops). With one
// document per sequence the mask changes nothing, bit for bit. With sliding windows and
// soft-capping on some layers too (Gemma 2/3), the same holds.
#include <gtest/gtest.h>

#include <vector>

#include "model/documents.h"
#include "model/recursive_model.h"
#include "tests/model/compare.h"

namespace rrt {
namespace {

constexpr int32_t kEos = 5;

ModelSpec doc_spec(bool windows) {
  ModelSpec s;
  s.model = {
      .vocab = 53, .d_model = 24, .n_heads = 6, .n_kv_heads = 2, .ffn = 40, .max_seq_len = 40};
  s.recursion = {.block_layers = 2, .loops = 2};
  s.lora = {.rank_attention = 3, .rank_mlp = 2};
  if (windows) {
    s.model.sliding_window = 4;
    s.model.sliding_layers = {true, false, false};
    s.model.attn_logit_softcapping = 0.5;
  }
  return s;
}

// Sequence 0: documents of 7, 12 (the last one cut by the sequence's end: no EOS) and 1 token;
// sequence 1: 20 tokens of one document. Targets: the next token, a few ignored.
struct Packed {
  int64_t N = 2, T = 20;
  std::vector<int32_t> tokens, targets;
  Packed() {
    for (int64_t i = 0; i < N * T; ++i) {
      tokens.push_back(static_cast<int32_t>(6 + (i * 17 + 3) % 47));  // never EOS
      targets.push_back(i % 7 == 3 ? RecursiveModel::kIgnoreIndex
                                   : static_cast<int32_t>((i * 29 + 1) % 53));
    }
    tokens[6] = kEos;   // document [0, 7)
    tokens[18] = kEos;  // document [7, 19), then [19, 20)
  }
};

std::vector<float> all_grads(const ParameterSet& p) {
  std::vector<float> out;
  for (int i = 0; i < p.registry().size(); ++i)
    out.insert(out.end(), p.grad(i), p.grad(i) + p.numel(i));
  return out;
}

TEST(DocumentStarts, RestartAfterEachEos) {
  const std::vector<int32_t> tokens = {1, kEos, 2, 3, kEos, kEos, 4, 1, 2, 3};
  std::vector<int32_t> start(10), pos(10);
  EXPECT_TRUE(document_starts(tokens.data(), 2, 5, kEos, start.data(), pos.data()));
  // Sequence 0: [1 EOS] [2 3 EOS]; sequence 1: [EOS] [4 1 2 3] (a document may start with EOS).
  EXPECT_EQ(start, (std::vector<int32_t>{0, 0, 2, 2, 2, 0, 1, 1, 1, 1}));
  EXPECT_EQ(pos, (std::vector<int32_t>{0, 1, 0, 1, 2, 0, 0, 1, 2, 3}));
  const std::vector<int32_t> one = {1, 2, 3, kEos};  // EOS last: still one document
  EXPECT_FALSE(document_starts(one.data(), 1, 4, kEos, start.data(), pos.data()));
}

class DocumentMask : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Windows, DocumentMask, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "WindowSoftcap" : "Plain"; });

TEST_P(DocumentMask, PackedDocumentsEqualEachDocumentAlone) {
  const ModelSpec spec = doc_spec(GetParam());
  const Packed b;
  RecursiveModel packed(spec, {.max_batch = b.N, .max_seq = b.T});
  packed.params().init({.seed = 7, .lora_b_zero = false});
  packed.set_document_eos(kEos);
  const int64_t V = spec.model.vocab;
  std::vector<float> logits(static_cast<size_t>(b.N * b.T * V));
  packed.logits(b.tokens.data(), b.N, b.T, logits.data());
  packed.params().zero_grads();
  const double loss = packed.forward_backward(b.tokens.data(), b.targets.data(), b.N, b.T);

  // Each document alone, in a model with the same weights and no document mask; the packed
  // mean loss is the token-weighted mean of the documents', so is its gradient.
  RecursiveModel alone(spec, {.max_batch = 1, .max_seq = b.T});
  alone.params().init({.seed = 7, .lora_b_zero = false});
  alone.params().zero_grads();
  int64_t counted = 0;
  for (int32_t t : b.targets) counted += t != RecursiveModel::kIgnoreIndex;
  const std::vector<std::pair<int64_t, int64_t>> docs = {{0, 7}, {7, 19}, {19, 20}, {20, 40}};
  double loss_sum = 0;
  for (const auto& [t0, t1] : docs) {
    const int64_t T = t1 - t0;
    const std::vector<int32_t> tok(b.tokens.begin() + t0, b.tokens.begin() + t1);
    const std::vector<int32_t> tgt(b.targets.begin() + t0, b.targets.begin() + t1);
    int64_t n = 0;
    for (int32_t t : tgt) n += t != RecursiveModel::kIgnoreIndex;
    std::vector<float> doc_logits(static_cast<size_t>(T * V));
    alone.logits(tok.data(), 1, T, doc_logits.data());
    const std::vector<float> packed_rows(logits.begin() + t0 * V, logits.begin() + t1 * V);
    EXPECT_LE(testing::relative_max_error(packed_rows.data(), doc_logits), 1e-5)
        << "document [" << t0 << ", " << t1 << ")";
    const float weight = static_cast<float>(n) / static_cast<float>(counted);
    loss_sum += n == 0 ? 0.0 : alone.forward_backward(tok.data(), tgt.data(), 1, T, weight) * n;
  }
  EXPECT_NEAR(loss, loss_sum / static_cast<double>(counted), 1e-5);
  const auto want = all_grads(alone.params()), got = all_grads(packed.params());
  EXPECT_LE(testing::relative_max_error(got.data(), want), 1e-4);

  // Without the mask the documents see each other: the check above is not vacuous.
  packed.set_document_eos(-1);
  std::vector<float> unmasked(logits.size());
  packed.logits(b.tokens.data(), b.N, b.T, unmasked.data());
  EXPECT_GT(testing::relative_max_error(unmasked.data(), logits), 1e-3);
}

TEST_P(DocumentMask, OneDocumentPerSequenceChangesNothing) {
  const ModelSpec spec = doc_spec(GetParam());
  Packed b;
  b.tokens[6] = b.tokens[18] = 9;  // no EOS inside: one document each
  b.tokens.back() = kEos;          // an EOS at the very end starts nothing
  RecursiveModel m(spec, {.max_batch = b.N, .max_seq = b.T});
  m.params().init({.seed = 7, .lora_b_zero = false});
  m.params().zero_grads();
  const double plain = m.forward_backward(b.tokens.data(), b.targets.data(), b.N, b.T);
  const auto plain_grads = all_grads(m.params());
  m.set_document_eos(kEos);
  m.params().zero_grads();
  EXPECT_EQ(m.forward_backward(b.tokens.data(), b.targets.data(), b.N, b.T), plain);
  EXPECT_EQ(all_grads(m.params()), plain_grads);
}

}  // namespace
}  // namespace rrt
