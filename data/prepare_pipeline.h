// The threads of `rrt prepare` (internal to data/prepare*.cpp): one reads the inputs into
// numbered batches (InputReader), N tokenise whole batches, and the caller takes the processed
// batches back in their numbering order, so what it writes does not depend on N or on which
// thread finished first. At most 2N + 2 batches are in flight (bounded memory). With N = 1
// everything runs on the caller's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/prepare_read.h"

namespace rrt {

struct ProcessedBatch {
  ItemBatch batch;
  std::vector<ItemResult> results;  // one per batch.items
  std::exception_ptr error;         // processing failed (a tokenizer error): rethrown by next()
};

class PreparePipeline {
 public:
  PreparePipeline(InputReader& reader, const std::vector<InputFile>& files,
                  const std::string& text_field, const Tokenizer& tokenizer, int threads);
  // Stops and joins the threads (also after an error).
  ~PreparePipeline();
  PreparePipeline(const PreparePipeline&) = delete;
  PreparePipeline& operator=(const PreparePipeline&) = delete;

  // The next batch in order; false after the last. Rethrows a reading or processing error at
  // the batch where it happened.
  bool next(ProcessedBatch& out);

 private:
  struct Shared;
  void read_loop();
  void work_loop();
  void process(ProcessedBatch& batch) const;

  InputReader& reader_;
  const std::vector<InputFile>& files_;
  const std::string& text_field_;
  const Tokenizer& tokenizer_;
  int threads_;
  std::unique_ptr<Shared> shared_;
};

}  // namespace rrt
