// Names of the scheduler, exit rule and KV fill options, as the commands and reports spell them.
#include "core/error.h"
#include "inference/generate.h"

namespace rrt::inference {

std::string to_string(Batching b) {
  switch (b) {
    case Batching::static_batch:
      return "static";
    case Batching::sequence_wise:
      return "sequence";
    case Batching::depth_wise:
      return "depth";
  }
  return "?";
}

std::string to_string(ExitRule r) {
  switch (r) {
    case ExitRule::none:
      return "none";
    case ExitRule::oracle:
      return "oracle";
    case ExitRule::confidence:
      return "confidence";
    case ExitRule::saturation:
      return "saturation";
    case ExitRule::classifier:
      return "classifier";
  }
  return "?";
}

std::string to_string(KvFill f) {
  switch (f) {
    case KvFill::propagate:
      return "propagate";
    case KvFill::recompute:
      return "recompute";
    case KvFill::copy:
      return "copy";
  }
  return "?";
}

Batching parse_batching(const std::string& s) {
  if (s == "static") return Batching::static_batch;
  if (s == "sequence") return Batching::sequence_wise;
  if (s == "depth") return Batching::depth_wise;
  throw Error("batching", "unknown scheduler '" + s + "': use static, sequence or depth");
}

KvFill parse_kv_fill(const std::string& s) {
  if (s == "propagate") return KvFill::propagate;
  if (s == "recompute") return KvFill::recompute;
  if (s == "copy") return KvFill::copy;
  throw Error("kv", "unknown KV fill '" + s + "': use propagate, recompute or copy");
}

}  // namespace rrt::inference
