#include "trainer/memory_check.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "evaluation/log_format.h"
#include "model/recursive_model.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

// cgroup v1 reports "no limit" as a huge page-rounded number (0x7FFFFFFFFFFFF000).
constexpr int64_t kNoLimit = int64_t{1} << 60;

// The first line of a small file, or "" when it cannot be read.
std::string first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// A byte count from a cgroup file: -1 for "max", a missing file or anything unreadable.
int64_t read_bytes(const fs::path& path) {
  const std::string s = first_line(path);
  if (s.empty() || s == "max") return -1;
  try {
    size_t used = 0;
    const long long v = std::stoll(s, &used);
    return used == 0 || v < 0 || v >= kNoLimit ? -1 : static_cast<int64_t>(v);
  } catch (const std::exception&) {
    return -1;
  }
}

// "<key>:   123 kB" lines of /proc/meminfo and /proc/self/status.
int64_t read_kib_field(const fs::path& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(key.size() + 1));
    long long kib = -1;
    if (fields >> kib && kib >= 0) return static_cast<int64_t>(kib) * 1024;
    return -1;
  }
  return -1;
}

struct CgroupLimit {
  int64_t free = -1, limit = -1;
  std::string path;
};

// Walks from the mount `top` down to its subdirectory `sub`, keeping the tightest limit - usage:
// Slurm puts the --mem limit on the job's cgroup and the process in a step or task below it.
// Missing levels are skipped (a container sees its own cgroup at the mount's root while
// /proc/self/cgroup names the host's path).
void tightest(const fs::path& top, const fs::path& sub, const char* limit_file,
              const char* usage_file, CgroupLimit& best) {
  std::vector<fs::path> levels{top};
  for (const fs::path& part : sub) {
    if (part.empty() || part == "." || part == "..") continue;
    levels.push_back(levels.back() / part);
  }
  for (const fs::path& dir : levels) {
    const int64_t limit = read_bytes(dir / limit_file);
    if (limit < 0) continue;
    const int64_t usage = std::max<int64_t>(read_bytes(dir / usage_file), 0);
    const int64_t free = std::max<int64_t>(limit - usage, 0);
    if (best.free < 0 || free < best.free) best = {free, limit, dir.string()};
  }
}

CgroupLimit cgroup_limit(const MemorySources& src) {
  CgroupLimit best;
  std::ifstream in(fs::path(src.proc) / "self" / "cgroup");
  std::string line;
  while (std::getline(in, line)) {
    // "hierarchy-id:controllers:path"; v2 is "0::/path", v1 lists its controllers.
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string rel = line.substr(b + 1);
    const fs::path sub = fs::path(rel).relative_path();
    if (controllers.empty()) {
      tightest(src.cgroup, sub, "memory.max", "memory.current", best);
    } else {
      std::stringstream list(controllers);
      std::string c;
      bool memory = false;
      while (std::getline(list, c, ',')) memory |= c == "memory";
      if (!memory) continue;
      tightest(fs::path(src.cgroup) / "memory", sub, "memory.limit_in_bytes",
               "memory.usage_in_bytes", best);
    }
  }
  return best;
}

}  // namespace

int64_t MemoryPlan::total() const {
  int64_t sum = 0;
  for (const MemoryPart& p : parts) sum += p.bytes;
  return sum * processes;
}

std::string MemoryPlan::describe() const {
  std::string s;
  for (const MemoryPart& p : parts) {
    if (p.bytes <= 0) continue;
    s += (s.empty() ? "" : " + ") + p.what + " " + format_bytes(p.bytes);
  }
  if (s.empty()) s = "nothing";
  if (processes > 1) s += " per rank x " + std::to_string(processes) + " ranks on this machine";
  return s;
}

namespace {

// An arena's size as Arena::plan lays it out (64-byte aligned tensors), from the registry, so
// that a const model can be measured.
int64_t parameter_bytes(const RecursiveModel& model) {
  int64_t bytes = 0;
  for (const auto& p : model.params().registry().params())
    bytes += (p.shape.numel() * static_cast<int64_t>(sizeof(float)) + 63) / 64 * 64;
  return bytes;
}

}  // namespace

MemoryPlan training_memory_plan(const RecursiveModel& model, const RecursiveModel* teacher,
                                double moment_fraction) {
  const int64_t params = parameter_bytes(model);
  MemoryPlan plan;
  plan.parts = {
      {"parameters", params},
      {"gradients", model.params().has_grads() ? params : 0},
      {"AdamW moments", static_cast<int64_t>(2.0 * moment_fraction * static_cast<double>(params))},
      {"activations", model.activation_bytes()},
      {"scratch", model.scratch_bytes()}};
  if (teacher)
    plan.parts.push_back({"teacher", parameter_bytes(*teacher) + teacher->activation_bytes() +
                                         teacher->scratch_bytes()});
  return plan;
}

int64_t ranks_on_this_machine(int64_t world) {
  for (const char* name :
       {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_TASKS_PER_NODE"}) {
    const char* v = std::getenv(name);
    if (!v || !*v) continue;
    // Slurm writes "4" or "4(x2)" (four tasks on each of two nodes): the leading count.
    const long n = std::strtol(v, nullptr, 10);
    if (n >= 1) return std::min<int64_t>(n, std::max<int64_t>(world, 1));
  }
  return 1;
}

MemorySources MemorySources::from_environment() {
  MemorySources src;
  if (const char* root = std::getenv("RRT_MEMORY_ROOT"); root && *root) {
    src.proc = (fs::path(root) / "proc").string();
    src.cgroup = (fs::path(root) / "sys" / "fs" / "cgroup").string();
  }
  return src;
}

MemoryLimit available_memory(const MemorySources& src) {
  MemoryLimit out;
  out.mem_available = read_kib_field(fs::path(src.proc) / "meminfo", "MemAvailable");
  const CgroupLimit cg = cgroup_limit(src);
  out.cgroup_free = cg.free;
  out.cgroup_limit = cg.limit;
  out.cgroup_path = cg.path;
  out.bytes = out.mem_available;
  if (cg.free >= 0 && (out.bytes < 0 || cg.free < out.bytes)) out.bytes = cg.free;
  return out;
}

std::string MemoryLimit::describe() const {
  if (bytes < 0) return "unknown (no MemAvailable, no cgroup limit)";
  std::string s;
  if (cgroup_free >= 0 && cgroup_free == bytes)
    s = format_bytes(bytes) + " free in cgroup " + cgroup_path + " (limit " +
        format_bytes(cgroup_limit) + ", " + format_bytes(cgroup_limit - cgroup_free) + " in use)";
  else
    s = format_bytes(bytes) + " (MemAvailable of the machine)";
  if (cgroup_free >= 0 && cgroup_free != bytes)
    s += "; the cgroup " + cgroup_path + " has " + format_bytes(cgroup_free) + " free";
  if (cgroup_free >= 0 && mem_available >= 0 && cgroup_free == bytes)
    s += "; MemAvailable " + format_bytes(mem_available);
  return s;
}

void check_memory(const MemoryPlan& needed, const MemoryLimit& limit, const std::string& hint) {
  if (limit.bytes < 0 || needed.total() <= limit.bytes) return;
  RRT_FAIL("memory", "this run needs about ", format_bytes(needed.total()), " (", needed.describe(),
           ") but only ", limit.describe(),
           " is available to it; the kernel would kill it part-way. ", hint,
           " (train.memory_check=false skips this check)");
}

std::string device_memory_refusal(const MemoryPlan& needed, const DeviceMemoryInfo& gpu,
                                  const std::string& device_name, const std::string& hint) {
  if (gpu.free_bytes < 0 || needed.total() <= gpu.free_bytes) return "";
  std::string where = "GPU " + std::to_string(gpu.device);
  if (!device_name.empty()) where += " (" + device_name + ")";
  std::string total;
  if (gpu.total_bytes >= 0) total = " of its " + format_bytes(gpu.total_bytes);
  return "train.device cuda: this run needs about " + format_bytes(needed.total()) +
         " of GPU memory (" + needed.describe() + ") but " + where + " has only " +
         format_bytes(gpu.free_bytes) + total +
         " free; the allocation would fail part-way (nvidia-smi shows what else holds it). " +
         hint + " (train.memory_check=false skips this check)";
}

void check_device_memory(const MemoryPlan& needed, const DeviceMemoryInfo& gpu,
                         const std::string& device_name, const std::string& hint) {
  const std::string refusal = device_memory_refusal(needed, gpu, device_name, hint);
  RRT_CHECK(refusal.empty(), "memory", refusal);
}

int64_t peak_rss_bytes(const std::string& proc) {
  return read_kib_field(fs::path(proc) / "self" / "status", "VmHWM");
}

}  // namespace rrt
