#include "core/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/test_signal.h"

namespace rrt {

std::string temporary_path(const std::string& final_path) {
  static std::atomic<int64_t> counter{0};
  return final_path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

bool is_temporary_of(const std::string& name, const std::string& final_name) {
  const std::string prefix = final_name + ".tmp";
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  if (name.size() == prefix.size()) return true;  // the fixed name rrt used before
  // ".<pid>.<n>": digits and exactly one more dot
  const std::string rest = name.substr(prefix.size());
  int dots = 0;
  for (char ch : rest) {
    if (ch == '.')
      ++dots;
    else if (ch < '0' || ch > '9')
      return false;
  }
  return dots == 2 && rest[0] == '.' && rest.back() != '.' && rest.find("..") == std::string::npos;
}

void commit_temporary_file(const std::string& temporary, const std::string& final_path,
                           const std::string& where) {
  namespace fs = std::filesystem;
  // Tests stop rrt here, inside a write: written, not yet synced nor renamed.
  test_signal_point("commit", fs::path(final_path).filename().string());
  try {
    const int fd = ::open(temporary.c_str(), O_RDONLY);
    RRT_CHECK(fd >= 0, where, "cannot reopen ", temporary, " to sync it: ", std::strerror(errno));
    const int synced = ::fsync(fd);
    const int sync_errno = errno;
    ::close(fd);
    RRT_CHECK(synced == 0, where, "fsync of ", temporary,
              " failed (disk full?): ", std::strerror(sync_errno));
    std::error_code ec;
    fs::rename(temporary, final_path, ec);
    RRT_CHECK(!ec, where, "cannot rename ", temporary, " to ", final_path, ": ", ec.message());
  } catch (...) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw;
  }
}

namespace {

// Writes all `size` bytes at `data` to fd, retrying short writes and EINTR; 0 or the errno.
int write_all(int fd, const char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : ENOSPC;
    done += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

void write_buffers_atomically(const std::string& path, std::span<const FileBuffer> buffers,
                              const std::string& where) {
  const std::string tmp = temporary_path(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  RRT_CHECK(fd >= 0, where, "cannot create ", tmp, ": ", std::strerror(errno));
  int error = 0;
  for (size_t i = 0; i < buffers.size() && error == 0; ++i)
    error = write_all(fd, static_cast<const char*>(buffers[i].data), buffers[i].size);
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    ::unlink(tmp.c_str());
    RRT_FAIL(where, "write failed (", std::strerror(error),
             "); the previous file, if any, is untouched");
  }
  commit_temporary_file(tmp, path, where);
}

void write_file_atomically(const std::string& path, const std::string& content) {
  const FileBuffer buffer{content.data(), content.size()};
  write_buffers_atomically(path, {&buffer, 1}, path);
}

void mark_output_incomplete(const std::string& dir, const std::string& writer) {
  write_file_atomically((std::filesystem::path(dir) / kIncompleteMarker).string(),
                        writer +
                            " is writing this directory. Its contents are complete once this "
                            "file is gone; rrt refuses to read it until then.\n");
}

void mark_output_complete(const std::string& dir) {
  const std::filesystem::path marker = std::filesystem::path(dir) / kIncompleteMarker;
  std::error_code ec;
  std::filesystem::remove(marker, ec);
  RRT_CHECK(!ec, marker.string(),
            "cannot remove the marker of an incomplete output: ", ec.message());
  // The removal is what makes the output complete: make it durable.
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void refuse_incomplete_output(const std::string& dir, const std::string& what,
                              const std::string& redo) {
  std::error_code ec;
  RRT_CHECK(!std::filesystem::exists(std::filesystem::path(dir) / kIncompleteMarker, ec), dir,
            "is an incomplete ", what, ": its writer did not finish (", kIncompleteMarker,
            " is still there; it was interrupted or ran out of disk); delete the directory and ",
            redo);
}

}  // namespace rrt
