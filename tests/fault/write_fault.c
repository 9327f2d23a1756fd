// A full disk (or a kill) at a chosen write, for the fault-injection test (write_faults.sh).
// Loaded with LD_PRELOAD into the rrt binary; no root, no mounts, so it runs in any CI container.
//
//   RRT_FAULT_FILE=substring   only writes to files whose path contains it are counted
//   RRT_FAULT_AFTER=N          bytes such writes may put down in total; the write that would
//                              pass N writes what fits, then every later one fails
//   RRT_FAULT_MODE=enospc|kill fail with ENOSPC (default), or SIGKILL the process at that point
//
// It wraps the calls through which rrt's writers reach the kernel: write / writev (libstdc++
// streams, rrt's own POSIX writes), pwrite / pwrite64 (HDF5's sec2 driver) and fwrite (stdio,
// whose internal writes bypass the dynamic linker). Paths come from /proc/self/fd.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long long budget_left = -1;  // -1: not read yet
static const char* pattern = NULL;
static int kill_mode = 0;

static void setup(void) {
  if (budget_left != -1) return;
  pattern = getenv("RRT_FAULT_FILE");
  const char* after = getenv("RRT_FAULT_AFTER");
  const char* mode = getenv("RRT_FAULT_MODE");
  budget_left = after ? atoll(after) : 0;
  kill_mode = mode && strcmp(mode, "kill") == 0;
}

static int watched(int fd) {
  setup();
  if (!pattern || !*pattern) return 0;
  char link[64], target[4096];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, target, sizeof(target) - 1);
  if (n <= 0) return 0;
  target[n] = '\0';
  return strstr(target, pattern) != NULL;
}

// How many of `want` bytes may go down now; 0 with errno set (or a kill) when none may.
static size_t allowance(size_t want) {
  if (budget_left <= 0) {
    if (kill_mode) raise(SIGKILL);
    errno = ENOSPC;
    return 0;
  }
  const size_t give = (long long)want < budget_left ? want : (size_t)budget_left;
  budget_left -= (long long)give;
  return give;
}

#define REAL(name)                             \
  static __typeof__(&name) real_##name = NULL; \
  if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void* buf, size_t count) {
  REAL(write);
  if (count == 0 || !watched(fd)) return real_write(fd, buf, count);
  const size_t give = allowance(count);
  return give == 0 ? -1 : real_write(fd, buf, give);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  REAL(pwrite);
  if (count == 0 || !watched(fd)) return real_pwrite(fd, buf, count, offset);
  const size_t give = allowance(count);
  return give == 0 ? -1 : real_pwrite(fd, buf, give, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off_t offset) {
  REAL(pwrite64);
  if (count == 0 || !watched(fd)) return real_pwrite64(fd, buf, count, offset);
  const size_t give = allowance(count);
  return give == 0 ? -1 : real_pwrite64(fd, buf, give, offset);
}

ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  REAL(writev);
  if (!watched(fd)) return real_writev(fd, iov, iovcnt);
  // Write the pieces one by one so that a short write stops where the budget ends.
  ssize_t done = 0;
  for (int i = 0; i < iovcnt; ++i) {
    if (iov[i].iov_len == 0) continue;
    const ssize_t n = write(fd, iov[i].iov_base, iov[i].iov_len);
    if (n < 0) return done > 0 ? done : -1;
    done += n;
    if ((size_t)n < iov[i].iov_len) break;
  }
  return done;
}

size_t fwrite(const void* ptr, size_t size, size_t nmemb, FILE* stream) {
  REAL(fwrite);
  const size_t bytes = size * nmemb;
  if (bytes == 0 || !watched(fileno(stream))) return real_fwrite(ptr, size, nmemb, stream);
  const size_t give = allowance(bytes);
  if (give == 0) return 0;
  const size_t written = real_fwrite(ptr, 1, give, stream);
  if (give < bytes) errno = ENOSPC;
  return size == 0 ? 0 : written / size;
}
