// The last step of every atomic file write in rrt (checkpoints, shards, safetensors, exports):
// a temporary file that is completely written and closed is fsynced, then renamed over its
// final name, so readers see either the old file or the whole new one, even after a crash.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace rrt {

// The temporary name for a write that will be committed to `final_path`:
// "<final_path>.tmp.<pid>.<n>", unique per process and per call, so two processes (or two
// writers in one) that write the same file never write into one temporary. A crashed writer's
// temporary stays behind under its own name; `is_temporary_of` recognises it for clean-up.
std::string temporary_path(const std::string& final_path);
// True when `name` (a file name, no directory) is a temporary of the file named `final_name`
// made by temporary_path, or by rrt before it (`<final_name>.tmp`).
bool is_temporary_of(const std::string& name, const std::string& final_name);

// On failure the temporary file is removed and rrt::Error (where = `where`) is thrown; the file
// at final_path, if any, is untouched.
void commit_temporary_file(const std::string& temporary, const std::string& final_path,
                           const std::string& where);

// One piece of a file for write_buffers_atomically: `size` bytes at `data` (null when size is 0).
struct FileBuffer {
  const void* data = nullptr;
  size_t size = 0;
};

// Writes `buffers` one after another to temporary_path(path) and commits it as above, so files
// assembled from a header and many tensors (GGUF, safetensors) need no copy into one string.
// On any failure (cannot create, short write, disk full, sync, rename) the temporary is removed
// and rrt::Error (where = `where`) is thrown with the system's reason; the file at path, if
// any, is untouched.
void write_buffers_atomically(const std::string& path, std::span<const FileBuffer> buffers,
                              const std::string& where);

// Writes `content` to temporary_path(path), then commits it as above. Errors name `path`.
void write_file_atomically(const std::string& path, const std::string& content);

// Multi-file outputs (shard sets, exports) are complete or refused: the writer puts
// dir/INCOMPLETE down (durably) before its first file and removes it after its last;
// readers refuse a directory that still holds it.
inline constexpr const char* kIncompleteMarker = "INCOMPLETE";
// `writer` names what is writing, e.g. "rrt export".
void mark_output_incomplete(const std::string& dir, const std::string& writer);
void mark_output_complete(const std::string& dir);
// Throws rrt::Error naming dir when dir/INCOMPLETE exists; `what` names the output ("shard set",
// "export") and `redo` the fix ("run `rrt prepare` again").
void refuse_incomplete_output(const std::string& dir, const std::string& what,
                              const std::string& redo);

}  // namespace rrt
