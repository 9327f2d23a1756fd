// Which inputs `rrt prepare` reads and how (docs/data.md, "Inputs"). Every file is read by its
// format, known from its name and its first bytes together, or refused with a message naming
// it; a directory walk reports every file it leaves out and why, and never leaves out a text
// file for its name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/input_stream.h"

namespace rrt {

enum class InputFormat {
  text,     // the whole (decompressed) file is one document
  jsonl,    // one JSON object per line, the document in a string field
  parquet,  // one document per row, in a string column
};

const char* input_format_name(InputFormat format);  // "text", "jsonl", "parquet"

struct InputFile {
  std::string path;
  InputFormat format = InputFormat::text;
  Compression compression = Compression::none;
  int64_t size = 0;                 // bytes on disk
  int64_t mtime_ns = 0;             // modification time, for recognising the inputs on a resume
  std::string description() const;  // "jsonl, zstd-compressed", "parquet", "text"
};

// A file a directory walk left out, and why ("hidden", "binary: a NUL byte at offset 12", ...).
struct SkippedFile {
  std::string path, reason;
};

struct InputList {
  std::vector<InputFile> files;
  std::vector<SkippedFile> skipped;
  // "skipped 3 file(s) under DIR: 2 binary (a.bin, b.png), 1 hidden (.x)"-style lines, one per
  // reason class, with the first few names; empty when nothing was skipped.
  std::vector<std::string> skipped_report() const;
};

// Files and directories in the order given; a directory contributes, recursively and sorted by
// path, every regular file that detect_input accepts. Hidden names (".*") in a directory are
// skipped (and reported), as is anything detect_input refuses; a file named explicitly that
// detect_input refuses is an error naming it.
InputList collect_inputs(const std::vector<std::string>& inputs);

// The format of one file from its name and first bytes. Returns false with `reason` set for a
// file that is not an input (binary data, an archive or compression rrt does not read); throws
// for contradictions that are never right (a ".zst" file that is not zstd data, a ".parquet"
// file without Parquet's magic bytes).
bool detect_input(const std::string& path, InputFile& file, std::string& reason);

// First offset of invalid UTF-8 in text (overlong forms, surrogates and code points above
// U+10FFFF are invalid), or -1 when it is all valid.
int64_t find_invalid_utf8(std::string_view text);

}  // namespace rrt
