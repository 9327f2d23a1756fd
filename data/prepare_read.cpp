#include "data/prepare_read.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/input_parquet.h"
#include "data/tokenizer.h"

namespace rrt {

namespace {

// A batch closes at this many item bytes (or at the end of a file): large enough that handing
// it to a thread costs nothing next to tokenising it, small enough to keep several in flight.
constexpr size_t kBatchBytes = 1 << 20;
constexpr size_t kBatchItems = 4096;
constexpr size_t kBlock = 1 << 20;

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

}  // namespace

struct InputReader::Open {
  std::unique_ptr<ByteReader> bytes;
  std::unique_ptr<LineReader> lines;
  std::unique_ptr<ParquetTextReader> parquet;
  int64_t item = 0;  // the next item's index
  int64_t text_bytes = 0;
};

InputReader::InputReader(const std::vector<InputFile>& files, std::string text_field,
                         ResumePoint start)
    : files_(files), text_field_(std::move(text_field)), start_(start), file_(start.file) {}

InputReader::~InputReader() = default;

std::string item_location(const InputFile& file, int64_t item) {
  switch (file.format) {
    case InputFormat::jsonl:
      return file.path + ":" + std::to_string(item + 1);
    case InputFormat::parquet:
      return file.path + ": row " + std::to_string(item);
    default:
      return file.path;
  }
}

void InputReader::open_file() {
  const InputFile& file = files_[static_cast<size_t>(file_)];
  open_ = std::make_unique<Open>();
  if (file.format == InputFormat::parquet) {
    open_->parquet = std::make_unique<ParquetTextReader>(file.path, text_field_);
  } else {
    open_->bytes = std::make_unique<ByteReader>(file.path, file.compression);
    if (file.format == InputFormat::jsonl)
      open_->lines = std::make_unique<LineReader>(*open_->bytes);
  }
}

bool InputReader::read_item(ItemBatch& batch) {
  const InputFile& file = files_[static_cast<size_t>(file_)];
  Open& o = *open_;
  // Items before the resume point are read (a stream cannot seek) but not handed on.
  const int64_t first = file_ == start_.file ? start_.item : 0;
  RawItem item;
  item.file = static_cast<int32_t>(file_);
  item.item = o.item;
  if (file.format == InputFormat::jsonl) {
    if (!o.lines->next(item.bytes)) return false;
  } else if (file.format == InputFormat::parquet) {
    if (!o.parquet->next(item.bytes, item.null)) return false;
    o.text_bytes += static_cast<int64_t>(item.bytes.size());
  } else {
    if (o.item > 0) return false;  // a text file is one item
    std::string& text = item.bytes;
    size_t size = 0;
    while (true) {
      text.resize(size + kBlock);
      const size_t got = o.bytes->read(text.data() + size, kBlock);
      size += got;
      if (got == 0) break;
    }
    text.resize(size);
  }
  ++o.item;
  if (item.item >= first) batch.items.push_back(std::move(item));
  return true;
}

void InputReader::finish_file(ItemBatch& batch) {
  const InputFile& file = files_[static_cast<size_t>(file_)];
  FinishedFile done;
  done.file = static_cast<int32_t>(file_);
  if (open_->bytes) {
    done.bytes = open_->bytes->file_bytes();
    done.crc32 = open_->bytes->file_crc32();
    done.text_bytes = open_->bytes->bytes();
  } else {
    // Arrow reads Parquet by ranges, not in order: the file's hash is a pass of its own.
    done.crc32 = file_crc32(file.path, &done.bytes);
    done.text_bytes = open_->text_bytes;
  }
  batch.finished.push_back(done);
  bytes_before_ += done.bytes;
  open_.reset();
  ++file_;
}

bool InputReader::next(ItemBatch& batch) {
  batch = ItemBatch{};
  if (failed_ || file_ >= static_cast<int64_t>(files_.size())) return false;
  batch.sequence = sequence_++;
  size_t bytes = 0;
  try {
    while (file_ < static_cast<int64_t>(files_.size())) {
      if (!open_) open_file();
      const size_t before = batch.items.size();
      if (!read_item(batch)) {
        finish_file(batch);
        break;  // a batch ends where a file does
      }
      if (batch.items.size() > before) bytes += batch.items.back().bytes.size();
      if (bytes >= kBatchBytes || batch.items.size() >= kBatchItems) break;
    }
  } catch (...) {
    batch.error = std::current_exception();
    failed_ = true;
  }
  int64_t in_file = 0;
  if (open_ && open_->bytes) in_file = open_->bytes->file_bytes();
  batch.input_bytes = bytes_before_ + in_file;
  return true;
}

void process_item(const RawItem& item, const InputFile& file, const std::string& text_field,
                  const Tokenizer& tokenizer, ItemResult& result) {
  result = ItemResult{};
  auto bad = [&](const char* bad_class, std::string message) {
    result.status = ItemStatus::bad;
    result.bad_class = bad_class;
    result.message = std::move(message);
  };
  std::string_view text = item.bytes;
  nlohmann::json document;
  if (file.format == InputFormat::jsonl) {
    if (blank(item.bytes)) {
      result.status = ItemStatus::blank;
      return;
    }
  } else if (item.null) {
    return bad("missing field", "the column \"" + text_field + "\" is null in this row");
  }
  // Checked before JSON parsing, so that invalid UTF-8 is named as such (with its offset).
  const int64_t invalid = find_invalid_utf8(text);
  if (invalid >= 0) {
    std::string where = "at byte " + std::to_string(invalid);
    if (file.format == InputFormat::text) {
      const int64_t line = 1 + std::count(text.begin(), text.begin() + invalid, '\n');
      where += " (line " + std::to_string(line) + ")";
    }
    return bad("invalid UTF-8", "invalid UTF-8 " + where + "; documents must be UTF-8 text");
  }
  if (file.format == InputFormat::jsonl) {
    document = nlohmann::json::parse(item.bytes, nullptr, false);
    if (document.is_discarded()) {
      std::string what = "parse error";
      try {
        const auto reparsed = nlohmann::json::parse(item.bytes);
        (void)reparsed;
      } catch (const nlohmann::json::exception& e) {
        what = e.what();
      }
      return bad("invalid JSON", "not valid JSON (" + what +
                                     "); each line of a .jsonl file must be one JSON object");
    }
    const auto field = document.is_object() ? document.find(text_field) : document.end();
    if (field == document.end() || !field->is_string())
      return bad("missing field", "expected a JSON object with a string field \"" + text_field +
                                      "\" (choose the field with --text-field)");
    text = field->get_ref<const std::string&>();
  }
  if (text.empty()) return bad("empty document", "the document is empty");
  result.ids = tokenizer.encode(text);
  result.ids.push_back(tokenizer.eos_id());
}

}  // namespace rrt
