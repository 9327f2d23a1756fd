#include "core/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace rrt {

void commit_temporary_file(const std::string& temporary, const std::string& final_path,
                           const std::string& where) {
  namespace fs = std::filesystem;
  try {
    const int fd = ::open(temporary.c_str(), O_RDONLY);
    RRT_CHECK(fd >= 0, where, "cannot reopen ", temporary, " to sync it: ", std::strerror(errno));
    const int synced = ::fsync(fd);
    const int sync_errno = errno;
    ::close(fd);
    RRT_CHECK(synced == 0, where, "fsync of ", temporary, " failed (disk full?): ",
              std::strerror(sync_errno));
    std::error_code ec;
    fs::rename(temporary, final_path, ec);
    RRT_CHECK(!ec, where, "cannot rename ", temporary, " to ", final_path, ": ", ec.message());
  } catch (...) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw;
  }
}

}  // namespace rrt
