#include "data/input_format.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

#include "core/durable_file.h"
#include "core/error.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

// Enough to tell text from binary without reading much of a large file.
constexpr size_t kSniffBytes = 64 << 10;
constexpr size_t kNamesShown = 5;

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Formats rrt does not read, known by their first bytes, so they are named in the refusal.
const char* foreign_format(std::string_view head) {
  struct Magic {
    std::string_view bytes;
    const char* name;
  };
  static const Magic kMagics[] = {
      {std::string_view("\xFD"
                        "7zXZ\0",
                        6),
       "xz-compressed data"},
      {"BZh", "bzip2-compressed data"},
      {std::string_view("\x04\x22\x4D\x18", 4), "lz4-compressed data"},
      {std::string_view("PK\x03\x04", 4), "a zip archive"},
      {std::string_view("7z\xBC\xAF\x27\x1C", 6), "a 7z archive"},
      {std::string_view("\x89HDF\r\n\x1A\n", 8), "an HDF5 file (token shards are outputs)"},
      {std::string_view("ARROW1", 6), "an Arrow IPC file"},
      {std::string_view("Obj\x01", 4), "an Avro file"},
      {"ORC", "an ORC file"},
  };
  for (const Magic& m : kMagics)
    if (starts_with(head, m.bytes)) return m.name;
  if (head.size() > 262 && head.substr(257, 5) == "ustar") return "a tar archive";
  return nullptr;
}

// Lengths of the UTF-8 sequence starting with byte b (0: not a lead byte).
int utf8_length(unsigned char b) {
  if (b < 0x80) return 1;
  if (b < 0xC2) return 0;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  if (b < 0xF5) return 4;
  return 0;
}

}  // namespace

int64_t find_invalid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII runs 8 bytes at a time: the common case for English text and JSON.
    while (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      if (word & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    const unsigned char b = p[i];
    const int length = utf8_length(b);
    if (length == 1) {
      ++i;
      continue;
    }
    if (length == 0 || i + length > n) return static_cast<int64_t>(i);
    for (int k = 1; k < length; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return static_cast<int64_t>(i);
    // Overlong 3- and 4-byte forms, UTF-16 surrogates, code points above U+10FFFF.
    if (b == 0xE0 && p[i + 1] < 0xA0) return static_cast<int64_t>(i);
    if (b == 0xED && p[i + 1] >= 0xA0) return static_cast<int64_t>(i);
    if (b == 0xF0 && p[i + 1] < 0x90) return static_cast<int64_t>(i);
    if (b == 0xF4 && p[i + 1] >= 0x90) return static_cast<int64_t>(i);
    i += static_cast<size_t>(length);
  }
  return -1;
}

const char* input_format_name(InputFormat format) {
  switch (format) {
    case InputFormat::jsonl:
      return "jsonl";
    case InputFormat::parquet:
      return "parquet";
    default:
      return "text";
  }
}

std::string InputFile::description() const {
  std::string text = input_format_name(format);
  if (compression != Compression::none)
    text += std::string(", ") + compression_name(compression) + "-compressed";
  return text;
}

bool detect_input(const std::string& path, InputFile& file, std::string& reason) {
  file = InputFile{};
  file.path = path;
  struct stat st {};
  RRT_CHECK(::stat(path.c_str(), &st) == 0, path, "cannot stat: ", std::strerror(errno));
  file.size = static_cast<int64_t>(st.st_size);
  file.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  const std::string head = read_file_head(path, kSniffBytes);
  std::string name = lower(fs::path(path).filename().string());

  const bool zstd_magic = starts_with(head, "\x28\xB5\x2F\xFD");
  const bool gzip_magic = starts_with(head, "\x1F\x8B");
  const bool zstd_name = ends_with(name, ".zst") || ends_with(name, ".zstd");
  const bool gzip_name = ends_with(name, ".gz");
  // A name and content that disagree are an error, not a guess: reading a renamed file by
  // either one alone is how compressed bytes end up tokenised as text.
  RRT_CHECK(!zstd_name || zstd_magic, path,
            "is named as zstd-compressed but does not start with zstd's magic bytes (28 B5 2F FD); "
            "the file is corrupt or misnamed");
  RRT_CHECK(!gzip_name || gzip_magic, path,
            "is named as gzip-compressed but does not start with gzip's magic bytes (1F 8B); the "
            "file is corrupt or misnamed");
  if (zstd_magic || gzip_magic) {
    file.compression = zstd_magic ? Compression::zstd : Compression::gzip;
    // The format inside comes from the name without the compression suffix.
    if (zstd_name || gzip_name) name = fs::path(name).stem().string();
    RRT_CHECK(!ends_with(name, ".parquet"), path,
              "is a compressed Parquet file; Parquet compresses its own pages: give the "
              ".parquet file itself");
    file.format = ends_with(name, ".jsonl") || ends_with(name, ".ndjson") ? InputFormat::jsonl
                                                                          : InputFormat::text;
    return true;
  }
  const bool parquet_magic = starts_with(head, "PAR1");
  RRT_CHECK(!ends_with(name, ".parquet") || parquet_magic, path,
            "is named .parquet but does not start with Parquet's magic bytes (PAR1); the file is "
            "corrupt, encrypted (PARE) or not Parquet");
  if (parquet_magic) {
    file.format = InputFormat::parquet;
    return true;
  }
  if (const char* foreign = foreign_format(head)) {
    reason = std::string(foreign) + ", which rrt prepare does not read";
    return false;
  }
  if (const void* nul = std::memchr(head.data(), '\0', head.size())) {
    reason = "binary: a NUL byte at offset " +
             std::to_string(static_cast<const char*>(nul) - head.data());
    return false;
  }
  // Invalid UTF-8 does not make a file binary: a text file with one bad byte is not left out
  // for it; its document is reported by file and line instead (or skipped and counted).
  file.format = ends_with(name, ".jsonl") || ends_with(name, ".ndjson") ? InputFormat::jsonl
                                                                        : InputFormat::text;
  return true;
}

InputList collect_inputs(const std::vector<std::string>& inputs) {
  InputList list;
  for (const std::string& input : inputs) {
    std::error_code error;
    const fs::file_status status = fs::status(input, error);
    RRT_CHECK(fs::exists(status), input,
              "input not found; give text, .jsonl, .jsonl.zst, .jsonl.gz or .parquet files, or "
              "directories of them");
    if (fs::is_regular_file(status)) {
      InputFile file;
      std::string reason;
      RRT_CHECK(detect_input(input, file, reason), input, "cannot be read as input: it is ", reason,
                "; give text (UTF-8), .jsonl, .jsonl.zst, .jsonl.gz or .parquet files");
      list.files.push_back(file);
      continue;
    }
    RRT_CHECK(fs::is_directory(status), input, "input is neither a file nor a directory");
    std::vector<fs::path> paths;
    try {
      for (auto it = fs::recursive_directory_iterator(input); it != fs::end(it); ++it) {
        const std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {
          list.skipped.push_back(
              {it->path().string(), it->is_directory() ? "hidden directory" : "hidden"});
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_directory()) {
          // A shard set (rrt prepare's output) under an input directory is not input.
          const fs::path dir = it->path();
          if (fs::exists(dir / "manifest.json") || fs::exists(dir / kIncompleteMarker) ||
              fs::exists(dir / "prepare_state.json")) {
            list.skipped.push_back({dir.string(), "output of rrt prepare (a shard set)"});
            it.disable_recursion_pending();
          }
          continue;
        }
        if (!it->is_regular_file()) {
          list.skipped.push_back({it->path().string(), "not a regular file"});
          continue;
        }
        paths.push_back(it->path());
      }
    } catch (const fs::filesystem_error& e) {
      RRT_FAIL(input, "cannot list the directory: ", e.what());
    }
    std::sort(paths.begin(), paths.end());
    for (const fs::path& path : paths) {
      InputFile file;
      std::string reason;
      if (detect_input(path.string(), file, reason))
        list.files.push_back(file);
      else
        list.skipped.push_back({path.string(), reason});
    }
  }
  return list;
}

std::vector<std::string> InputList::skipped_report() const {
  // Grouped by the reason's class (the text before ':'), in order of first appearance.
  std::vector<std::string> classes;
  std::map<std::string, std::vector<std::string>> names;
  for (const SkippedFile& s : skipped) {
    const std::string group = s.reason.substr(0, s.reason.find(':'));
    if (!names.count(group)) classes.push_back(group);
    names[group].push_back(s.path);
  }
  std::vector<std::string> lines;
  for (const std::string& group : classes) {
    const std::vector<std::string>& paths = names[group];
    std::string line = "skipped " + std::to_string(paths.size()) + " file(s): " + group + " (";
    for (size_t i = 0; i < std::min(paths.size(), kNamesShown); ++i)
      line += (i ? ", " : "") + paths[i];
    if (paths.size() > kNamesShown) line += ", ...";
    lines.push_back(line + ")");
  }
  return lines;
}

}  // namespace rrt
