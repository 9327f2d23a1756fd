#include "trainer/retention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "core/error.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

// A validation is healthy when its perplexity is finite (exp(loss) overflows above ~709.78).
bool finite_perplexity(double val_loss) { return std::isfinite(std::exp(val_loss)); }

}  // namespace

int64_t checkpoint_step(const std::string& path) {
  const std::string name = fs::path(path).filename().string();  // step_00001234.h5
  return std::strtoll(name.c_str() + 5, nullptr, 10);
}

void prune_checkpoints(const std::string& dir, int64_t keep_last, int64_t newest, int64_t protect) {
  std::vector<std::string> history;
  for (const std::string& p : list_checkpoints(dir))
    if (checkpoint_step(p) <= newest) history.push_back(p);
  for (size_t i = 0; keep_last > 0 && i + static_cast<size_t>(keep_last) < history.size(); ++i)
    if (checkpoint_step(history[i]) != protect) fs::remove(history[i]);
}

CheckpointRetention::CheckpointRetention(std::string run_dir, int64_t keep_last)
    : dir_(std::move(run_dir)), keep_last_(keep_last) {}

void CheckpointRetention::resume(const std::string& metrics_path, int64_t resumed) {
  newest_ = resumed;
  // The run went on past every earlier checkpoint, so each one's next step had a finite loss.
  usable_through_ = resumed - 1;
  std::ifstream in(metrics_path);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("val_loss")) continue;
    const int64_t step = j.value("step", int64_t{0});
    if (step > resumed) continue;  // logged after the checkpoint: this run redoes it
    // A non-finite loss is written as null.
    const auto& v = j["val_loss"];
    validations_[step] = v.is_number() && finite_perplexity(v.get<double>());
  }
}

void CheckpointRetention::validated(int64_t step, double val_loss) {
  validations_[step] = finite_perplexity(val_loss);
}

void CheckpointRetention::trained(int64_t step) {
  if (step - 1 <= usable_through_) return;
  usable_through_ = step - 1;
  // The newest checkpoint was pending until now; an older good one kept for it may go.
  if (newest_ == step - 1) prune();
}

void CheckpointRetention::saved(int64_t step) {
  newest_ = step;
  prune();
}

CheckpointRetention::Health CheckpointRetention::health(int64_t step) const {
  if (step >= bad_from_) return Health::bad;
  auto it = validations_.upper_bound(step);  // the newest validation at or before `step`
  if (it != validations_.begin()) {
    --it;
    if (!it->second) return Health::bad;
    if (it->first == step) return Health::good;
  }
  return step <= usable_through_ ? Health::good : Health::pending;
}

int64_t CheckpointRetention::last_good() const {
  const std::vector<std::string> all = list_checkpoints(dir_);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const int64_t step = checkpoint_step(*it);
    if (step <= newest_ && health(step) == Health::good) return step;
  }
  return 0;
}

void CheckpointRetention::prune() const {
  prune_checkpoints(dir_, keep_last_, newest_, last_good());
}

std::vector<std::string> CheckpointRetention::diverged(int64_t step) {
  bad_from_ = std::min(bad_from_, step - 1);
  const int64_t good = last_good();
  std::vector<std::string> moved;
  const fs::path to = fs::path(dir_) / "diverged";
  for (const std::string& p : list_checkpoints(dir_)) {
    const int64_t s = checkpoint_step(p);
    if (s <= good || s > newest_) continue;
    fs::create_directories(to);
    const std::string name = fs::path(p).filename().string();
    std::error_code ec;
    fs::rename(p, to / name, ec);
    if (!ec) moved.push_back(name);
  }
  return moved;
}

}  // namespace rrt
