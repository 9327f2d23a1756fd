#include "trainer/proto/event_codec.h"

#include "trainer/proto/tensorboard_event.pb.h"

namespace rrt {

std::string encode_file_version_event(double wall_time, const std::string& version) {
  tensorboard::Event e;
  e.set_wall_time(wall_time);
  e.set_file_version(version);
  return e.SerializeAsString();
}

std::string encode_session_start_event(double wall_time, int64_t step) {
  tensorboard::Event e;
  e.set_wall_time(wall_time);
  e.set_step(step);
  e.mutable_session_log()->set_status(tensorboard::SessionLog::START);
  return e.SerializeAsString();
}

std::string encode_scalars_event(double wall_time, int64_t step,
                                 const std::vector<std::pair<std::string, double>>& values) {
  tensorboard::Event e;
  e.set_wall_time(wall_time);
  e.set_step(step);
  tensorboard::Summary* summary = e.mutable_summary();
  for (const auto& [tag, value] : values) {
    tensorboard::Summary::Value* v = summary->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
  }
  return e.SerializeAsString();
}

bool decode_tensorboard_event(const std::string& record, TensorBoardEvent* out) {
  tensorboard::Event e;
  if (!e.ParseFromString(record)) return false;
  *out = {};
  out->wall_time = e.wall_time();
  out->step = e.step();
  out->file_version = e.file_version();
  out->session_start =
      e.has_session_log() && e.session_log().status() == tensorboard::SessionLog::START;
  for (const auto& v : e.summary().value())
    if (v.has_simple_value()) out->scalars.emplace_back(v.tag(), v.simple_value());
  return true;
}

}  // namespace rrt
