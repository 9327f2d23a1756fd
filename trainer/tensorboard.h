// TensorBoard event files (docs/runs.md, "TensorBoard"): the scalars of each metrics.jsonl line
// (losses per term and exit, learning rate, gradient norm, tokens/s, GFLOP/s, MFU, comm wait,
// peak memory, validation loss and perplexity) as protobuf Event records in TFRecord framing,
// in train.run_dir/events.out.tfevents.<time>.<host>.<pid>. Each invocation of rrt train starts
// a new file; `tensorboard --logdir runs/` reads them all, in the order of their names.
//
// TFRecord framing of one record: uint64 length (little endian), uint32 masked CRC-32C of those
// 8 bytes, the data, uint32 masked CRC-32C of the data (core/crc32c.h).
#pragma once

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "trainer/proto/event_codec.h"  // TensorBoardEvent

namespace rrt {

class TensorBoardWriter {
 public:
  // Creates the event file in `dir` (which must exist) and writes its file_version record, then
  // a SessionLog START at `first_step`, the first step this invocation runs: TensorBoard then
  // shows a resumed run's repeated steps once, from this file.
  TensorBoardWriter(const std::string& dir, int64_t first_step);
  const std::string& path() const { return path_; }

  // One Event holding a scalar per (tag, value); flushed, and a failed write throws naming the
  // file (a log that silently stops is worse than a stopped run).
  void add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  // Every number of a metrics.jsonl line except "step", tagged by tensorboard_tag.
  void add_metrics(const nlohmann::json& line);

 private:
  void write_event(const std::string& serialized);
  std::string path_;
  std::ofstream out_;
};

// The tag of a metrics.jsonl key: "val_loss" -> "val/loss", "loss_ce" -> "train/loss_ce".
std::string tensorboard_tag(const std::string& key);

// One record in TFRecord framing.
std::string tfrecord_frame(std::string_view data);

// Reads every record of a TFRecord file, checking both CRCs of each; throws rrt::Error naming
// the file and the byte offset of a bad or truncated record.
std::vector<std::string> read_tfrecords(const std::string& path);

// A record parsed back as an Event (decode_tensorboard_event).
TensorBoardEvent parse_tensorboard_event(const std::string& record);

}  // namespace rrt
