// The two halves of reading inputs for `rrt prepare` (internal to data/prepare*.cpp):
// InputReader walks the files in order and cuts their items (a .jsonl line, a Parquet row, a
// whole text file) into numbered batches; process_item turns one item into token ids or a
// classified bad document. The reader is sequential (one file at a time, streamed); items are
// processed by any number of threads, and the shard writer consumes the batches in their order,
// which is what makes the shards the same for every thread count.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "data/input_format.h"

namespace rrt {

class Tokenizer;

// Where reading starts: the first item of `file` not yet completely in a shard, and how many of
// its tokens already are (the start of a fresh preparation is {0, 0, 0}).
struct ResumePoint {
  int64_t file = 0, item = 0, skip_tokens = 0;
};

struct RawItem {
  int32_t file = 0;
  int64_t item = 0;   // 0-based: line - 1 of a .jsonl, the row of a Parquet file, 0 for text
  bool null = false;  // a Parquet null
  std::string bytes;  // the line, the value or the file's text
};

struct FinishedFile {
  int32_t file = 0;
  int64_t bytes = 0;       // the file's size as read
  uint32_t crc32 = 0;      // of the file's bytes
  int64_t text_bytes = 0;  // decompressed bytes (Parquet: bytes of the column's values)
};

struct ItemBatch {
  int64_t sequence = 0;
  std::vector<RawItem> items;
  // Files whose last item is in this batch or before it (a batch ends where a file does).
  std::vector<FinishedFile> finished;
  int64_t input_bytes = 0;   // input file bytes read so far, cumulative (progress)
  std::exception_ptr error;  // reading failed after `items`: rethrown when the batch is written
};

class InputReader {
 public:
  InputReader(const std::vector<InputFile>& files, std::string text_field, ResumePoint start);
  ~InputReader();
  // The next batch (about 1 MiB of items); false after the last. A read error ends the stream:
  // the batch holding it carries it in `error` and is the last.
  bool next(ItemBatch& batch);

 private:
  struct Open;
  void open_file();
  // Appends the current file's next item; false when the file has no more.
  bool read_item(ItemBatch& batch);
  void finish_file(ItemBatch& batch);

  const std::vector<InputFile>& files_;
  std::string text_field_;
  ResumePoint start_;
  int64_t file_ = 0, sequence_ = 0, bytes_before_ = 0;
  std::unique_ptr<Open> open_;
  bool failed_ = false;
};

enum class ItemStatus { document, blank, bad };

struct ItemResult {
  ItemStatus status = ItemStatus::document;
  std::string bad_class;     // "invalid JSON", "missing field", "invalid UTF-8", "empty document"
  std::string message;       // what is wrong, for the error or the skip report
  std::vector<int32_t> ids;  // the document's tokens, EOS last
};

// Parses, checks and encodes one item; thread-safe for a thread-safe tokenizer.
void process_item(const RawItem& item, const InputFile& file, const std::string& text_field,
                  const Tokenizer& tokenizer, ItemResult& result);

// "path:12" (a .jsonl line), "path: row 7" (a Parquet row), "path" (a text file).
std::string item_location(const InputFile& file, int64_t item);

}  // namespace rrt
