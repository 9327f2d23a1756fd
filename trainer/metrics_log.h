// metrics.jsonl and the progress lines (docs/runs.md, "Outputs"): appended, never rewritten, and
// a write that fails is an error naming the file, never silent.
//
// On resume, the lines logged after the checkpoint's step (and a partial last line, from a kill
// in mid-write) are cut off by one ftruncate: the file keeps every earlier byte whether or not the
// process dies during the cut. A line whose write fails (a full disk) is cut back off as well, so
// the file never ends inside a line that rrt reported as failed.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace rrt {

class MetricsLog {
 public:
  MetricsLog() = default;
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Opens (creating) `path` for appending after dropping every line from the first one whose
  // "step" is above keep_through_step, and a partial last line.
  void open(const std::string& path, int64_t keep_through_step);
  bool is_open() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  // One JSON line. Throws rrt::Error naming the file when the write fails.
  void append(const nlohmann::json& line);

 private:
  std::string path_;
  int fd_ = -1;
};

// The byte offset where the kept part of a metrics file ends: the start of the first line that
// logged after `keep_through_step`, or of a partial last line (no newline); else its size.
int64_t metrics_keep_length(const std::string& content, int64_t keep_through_step);

// fflush(stdout) and throw rrt::Error naming stdout's file when a progress line could not be
// written (a full disk under `rrt train > train.log`, a closed pipe); `what` names the line.
void check_stdout(const char* what);

}  // namespace rrt
