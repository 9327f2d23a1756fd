#include "trainer/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/durable_file.h"
#include "core/error.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown host";
  return buf;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "pid 1234 on host node17 (since 2024-05-01T12:00:00Z)", from the lock file's text.
std::string describe_holder(const std::string& text) {
  long pid = 0;
  char host[256] = {}, since[64] = {};
  if (std::sscanf(text.c_str(), "pid %ld host %255s since %63s", &pid, host, since) >= 2)
    return "rrt pid " + std::to_string(pid) + " on host " + host +
           (since[0] ? std::string(" (since ") + since + ")" : "");
  return "another process (it has not written its pid and host yet)";
}

// The files `rrt train` writes into a run directory: what archive moves and overwrite deletes.
// Nothing else is touched, whatever train.run_dir points at.
bool is_run_output(const std::string& name) {
  return (name.size() == 16 && name.rfind("step_", 0) == 0 && name.substr(13) == ".h5") ||
         name == "metrics.jsonl" || name == "config.yaml" || name == "diverged" ||
         name.rfind("events.out.tfevents.", 0) == 0 ||
         (name.rfind("profile_rank", 0) == 0 && name.size() > 5 &&
          name.substr(name.size() - 5) == ".json");
}

std::vector<fs::path> run_outputs(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (is_run_output(e.path().filename().string())) out.push_back(e.path());
  return out;
}

// A checkpoint write's temporary: step_XXXXXXXX.h5.tmp[.<pid>.<n>].
bool is_checkpoint_temporary(const std::string& name) {
  return name.size() > 16 && name.rfind("step_", 0) == 0 &&
         is_temporary_of(name, name.substr(0, 16));
}

void remove_stale_temporaries(const fs::path& dir) {
  int removed = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!is_checkpoint_temporary(e.path().filename().string())) continue;
    std::error_code ec;
    if (fs::remove(e.path(), ec)) ++removed;
  }
  if (removed > 0)
    std::printf("removed %d unfinished checkpoint file(s) of an interrupted write in %s\n", removed,
                dir.string().c_str());
}

void archive_or_overwrite(const RunConfig& c, const std::vector<std::string>& checkpoints) {
  const fs::path dir = c.train.run_dir;
  const std::string newest = fs::path(checkpoints.back()).filename().string();
  const std::string& mode = c.checkpoint.existing;
  RRT_CHECK(mode != "refuse", "train.run_dir", dir.string(), " holds ", checkpoints.size(),
            " checkpoint(s) of an earlier run (newest ", newest,
            ") and checkpoint.resume is false: a new run there would mix its checkpoints and "
            "metrics with the old ones, and pruning would delete one run's files for the "
            "other's. Resume it (checkpoint.resume=true), choose another train.run_dir, or set "
            "checkpoint.existing=archive (moves them to ",
            (dir / "archive").string(),
            "/<time>/) or checkpoint.existing=overwrite (deletes them)");
  const std::vector<fs::path> outputs = run_outputs(dir);
  if (mode == "overwrite") {
    for (const fs::path& p : outputs) fs::remove_all(p);
    std::printf(
        "checkpoint.existing=overwrite: deleted the earlier run in %s (%zu checkpoint(s), "
        "newest %s, and its metrics)\n",
        dir.string().c_str(), checkpoints.size(), newest.c_str());
    return;
  }
  std::string stamp = utc_now();
  for (char& ch : stamp)
    if (ch == ':') ch = '-';  // portable file names
  fs::path to = dir / "archive" / stamp;
  for (int i = 2; fs::exists(to); ++i) to = dir / "archive" / (stamp + "-" + std::to_string(i));
  fs::create_directories(to);
  for (const fs::path& p : outputs) fs::rename(p, to / p.filename());
  std::printf(
      "checkpoint.existing=archive: moved the earlier run's %zu checkpoint(s) (newest %s), "
      "metrics and config to %s\n",
      checkpoints.size(), newest.c_str(), to.string().c_str());
}

}  // namespace

RunLock::RunLock(const std::string& dir) {
  const std::string path = (fs::path(dir) / kRunLockFile).string();
  // O_CLOEXEC: a child process (a tool rrt starts) must not inherit, and so keep, the lock.
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  RRT_CHECK(fd_ >= 0, "train.run_dir", "cannot open the lock file ", path, ": ",
            std::strerror(errno), "; is the run directory writable?");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      std::ifstream in(path);
      std::stringstream text;
      text << in.rdbuf();
      ::close(fd_);
      fd_ = -1;
      RRT_FAIL("train.run_dir", dir, " is in use by ", describe_holder(text.str()),
               ": two trainers in one run directory would overwrite each other's checkpoints "
               "and metrics. Wait for it to finish or stop it (SIGTERM writes a checkpoint), or "
               "choose another train.run_dir");
    }
    // ENOLCK / EOPNOTSUPP: a network file system mounted without lock support.
    std::fprintf(stderr,
                 "rrt: warning: cannot lock %s (%s); training without a lock: make sure no "
                 "other trainer uses %s\n",
                 path.c_str(), std::strerror(err), dir.c_str());
  }
  // Whoever is refused next reads who holds it.
  const std::string text =
      "pid " + std::to_string(::getpid()) + " host " + host_name() + " since " + utc_now() + "\n";
  if (::ftruncate(fd_, 0) == 0) {
    const ssize_t written = ::pwrite(fd_, text.data(), text.size(), 0);
    (void)written;  // the lock holds without the text; only the refusal message is poorer
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // drops the lock; the file stays (deleting it would race)
}

std::unique_ptr<RunLock> claim_run_directory(const RunConfig& c) {
  const fs::path dir = c.train.run_dir;
  fs::create_directories(dir);
  auto lock = std::make_unique<RunLock>(dir.string());
  remove_stale_temporaries(dir);
  const std::vector<std::string> checkpoints = list_checkpoints(dir.string());
  if (!c.checkpoint.resume && !checkpoints.empty()) archive_or_overwrite(c, checkpoints);
  return lock;
}

}  // namespace rrt
