// TensorBoard Event records, encoded and decoded with libprotobuf (tensorboard_event.proto).
//
// This is the only code that touches protobuf (library rrt_tensorboard). Debian's
// libsentencepiece exports the symbols of its bundled, older protobuf-lite, and a process that
// loads both it and libprotobuf.so crashes before main: libprotobuf's initialisers call into
// sentencepiece's copy. So executables link libprotobuf.a whole, with --exclude-libs keeping its
// symbols local: rrt's calls bind to that copy, sentencepiece's to its own. No exception leaves
// these functions, so the boundary stays a plain C++ API.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rrt {

// A record parsed back as an Event (with rrt's subset of the messages).
struct TensorBoardEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;                            // set in the first record only
  bool session_start = false;                          // a SessionLog START record
  std::vector<std::pair<std::string, float>> scalars;  // the summary's simple values
};

// The serialized Event that opens a file: wall_time and file_version ("brain.Event:2").
std::string encode_file_version_event(double wall_time, const std::string& version);
// The serialized Event marking that an invocation starts at `step` (SessionLog START): a reader
// purges what earlier files logged at that step and later.
std::string encode_session_start_event(double wall_time, int64_t step);
// The serialized Event of one step: a Summary with a simple_value per (tag, value).
std::string encode_scalars_event(double wall_time, int64_t step,
                                 const std::vector<std::pair<std::string, double>>& values);
// False when `record` is not an Event (no exception crosses the library's boundary).
bool decode_tensorboard_event(const std::string& record, TensorBoardEvent* out);

}  // namespace rrt
