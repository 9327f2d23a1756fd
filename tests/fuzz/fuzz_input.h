// The scaffolding both fuzz targets share: the input bytes go to a temporary file (the readers
// under test open files), `read` runs on its path, and an rrt::Error is the expected way for a
// bad input to end. Anything else (a crash, a hang, another exception) is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>

#include "core/error.h"

namespace rrt::fuzz {

template <typename Read>
void with_input_file(const uint8_t* data, size_t size, Read&& read) {
  char path[] = "/tmp/rrt_fuzz_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return;
  const bool written = ::write(fd, data, size) == static_cast<ssize_t>(size);
  ::close(fd);
  try {
    if (written) read(path);
  } catch (const Error&) {
  }
  std::remove(path);
}

}  // namespace rrt::fuzz
