#include "trainer/metrics_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace rrt {

int64_t metrics_keep_length(const std::string& content, int64_t keep_through_step) {
  size_t at = 0;
  while (at < content.size()) {
    const size_t end = content.find('\n', at);
    if (end == std::string::npos) break;  // a partial last line
    const auto j =
        nlohmann::json::parse(content.begin() + static_cast<std::ptrdiff_t>(at),
                              content.begin() + static_cast<std::ptrdiff_t>(end), nullptr, false);
    // A complete line that is not JSON (an edit by hand) is kept: cutting there would drop the
    // good lines after it.
    if (!j.is_discarded() && j.is_object() && j.value("step", int64_t{0}) > keep_through_step)
      break;
    at = end + 1;
  }
  return static_cast<int64_t>(at);
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::open(const std::string& path, int64_t keep_through_step) {
  if (fd_ >= 0) ::close(fd_);
  path_ = path;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  RRT_CHECK(fd_ >= 0, path, "cannot open for appending: ", std::strerror(errno));
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  RRT_CHECK(!in.bad(), path, "cannot read: ", std::strerror(errno));
  const std::string content = text.str();
  const int64_t keep = metrics_keep_length(content, keep_through_step);
  if (keep == static_cast<int64_t>(content.size())) return;
  // One call: the file is either as it was or cut at a line boundary, never emptied.
  RRT_CHECK(::ftruncate(fd_, keep) == 0, path, "cannot drop the lines logged after step ",
            keep_through_step, ": ", std::strerror(errno));
  RRT_CHECK(::fsync(fd_) == 0, path, "fsync failed: ", std::strerror(errno));
}

void MetricsLog::append(const nlohmann::json& line) {
  RRT_CHECK(fd_ >= 0, path_.empty() ? "metrics.jsonl" : path_, "append before open()");
  const std::string text = line.dump() + "\n";
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : ENOSPC;
      // Leave no partial line behind (best effort: the file ends at the last whole line).
      if (before >= 0 && ::ftruncate(fd_, before) != 0) {
      }
      RRT_FAIL(path_, "cannot append a metrics line (", std::strerror(error),
               "); earlier lines are intact. Free space, then rerun to resume from the last "
               "checkpoint");
    }
    done += static_cast<size_t>(n);
  }
}

void check_stdout(const char* what) {
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return;
  const int error = errno;
  char target[512] = {};
  const ssize_t n = ::readlink("/proc/self/fd/1", target, sizeof(target) - 1);
  const std::string file = n > 0 ? std::string(target, static_cast<size_t>(n)) : "stdout";
  std::clearerr(stdout);
  RRT_FAIL(file, "cannot write the ", what, " to standard output (", std::strerror(error),
           "); a log that silently misses lines is not kept. Free space, then rerun to resume "
           "from the last checkpoint");
}

}  // namespace rrt
