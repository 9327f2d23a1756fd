#include "trainer/tensorboard.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/crc32c.h"
#include "core/error.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

double wall_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}

uint32_t get_u32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

}  // namespace

std::string tfrecord_frame(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  const uint64_t n = data.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFFu));
  put_u32(out, mask_crc32c(crc32c(out.data(), 8)));
  out.append(data);
  put_u32(out, mask_crc32c(crc32c(data.data(), data.size())));
  return out;
}

std::vector<std::string> read_tfrecords(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RRT_CHECK(in.good(), path, "cannot open the event file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::vector<std::string> records;
  size_t at = 0;
  while (at < bytes.size()) {
    RRT_CHECK(bytes.size() - at >= 12, path, "truncated record header at byte ", at);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t{p[at + i]} << (8 * i);
    RRT_CHECK(unmask_crc32c(get_u32(p + at + 8)) == crc32c(p + at, 8), path,
              "bad length CRC of the record at byte ", at);
    RRT_CHECK(n <= bytes.size() - at - 12 && bytes.size() - at - 12 - n >= 4, path,
              "truncated record at byte ", at, " (", n, " bytes announced)");
    const unsigned char* data = p + at + 12;
    RRT_CHECK(unmask_crc32c(get_u32(data + n)) == crc32c(data, n), path,
              "bad data CRC of the record at byte ", at);
    records.emplace_back(reinterpret_cast<const char*>(data), n);
    at += 12 + n + 4;
  }
  return records;
}

TensorBoardEvent parse_tensorboard_event(const std::string& record) {
  TensorBoardEvent out;
  RRT_CHECK(decode_tensorboard_event(record, &out), "TensorBoard event", "a record of ",
            record.size(), " bytes is not a protobuf Event");
  return out;
}

std::string tensorboard_tag(const std::string& key) {
  if (key.starts_with("val_")) return "val/" + key.substr(4);
  return "train/" + key;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir, int64_t first_step) {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) std::strcpy(host.data(), "localhost");
  const long seconds = static_cast<long>(wall_time_now());
  // TensorBoard finds event files by "tfevents" in the name; time, host and pid keep the files
  // of successive invocations (and of two machines sharing a file system) apart.
  // A counter keeps two writers of one process apart (a test that trains twice in a second).
  static std::atomic<int> writers{0};
  path_ = (fs::path(dir) / ("events.out.tfevents." + std::to_string(seconds) + "." + host.data() +
                            "." + std::to_string(getpid()) + "." + std::to_string(writers++)))
              .string();
  out_.open(path_, std::ios::binary | std::ios::app);
  RRT_CHECK(out_.good(), path_,
            "cannot create the TensorBoard event file (set log.tensorboard=false to run without)");
  write_event(encode_file_version_event(wall_time_now(), "brain.Event:2"));
  write_event(encode_session_start_event(wall_time_now(), first_step));
}

void TensorBoardWriter::write_event(const std::string& serialized) {
  out_ << tfrecord_frame(serialized);
  out_.flush();
  RRT_CHECK(out_.good(), path_, "writing the TensorBoard event file failed (disk full?)");
}

void TensorBoardWriter::add_scalars(int64_t step,
                                    const std::vector<std::pair<std::string, double>>& values) {
  write_event(encode_scalars_event(wall_time_now(), step, values));
}

void TensorBoardWriter::add_metrics(const nlohmann::json& line) {
  std::vector<std::pair<std::string, double>> values;
  for (const auto& [key, value] : line.items())
    if (key != "step" && value.is_number())
      values.emplace_back(tensorboard_tag(key), value.get<double>());
  add_scalars(line.value("step", int64_t{0}), values);
}

}  // namespace rrt
