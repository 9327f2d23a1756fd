// The memory check of `rrt train` (docs/runs.md, "Memory"): before the step writes its arenas,
// the planned peak of this process (parameters, gradients, AdamW moments, activations, scratch,
// the teacher) is compared with the memory it may actually use: the smallest of the cgroup limit
// minus what the cgroup already uses (v2 memory.max / memory.current, v1 memory.limit_in_bytes /
// memory.usage_in_bytes, every ancestor included, as under Slurm's --mem) and the kernel's
// MemAvailable. A plan that does not fit is refused with both numbers, instead of the kernel's
// OOM killer ending the run without a word. Arenas are mapped untouched (core/arena.h), so the
// plan exists before the memory does.
//
// The paths are injectable (MemorySources), so tests run against a fake /proc and cgroup tree.
//
// On train.device: cuda the same is done for the GPU (check_device_memory): the device model's
// planned bytes against cudaMemGetInfo's free memory, before any of them is allocated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/device.h"

namespace rrt {

struct MemoryPart {
  std::string what;  // "parameters", "gradients", "AdamW moments", "activations", ...
  int64_t bytes = 0;
};

struct MemoryPlan {
  std::vector<MemoryPart> parts;  // of one process
  int64_t processes = 1;          // ranks of the job on this machine, which share its memory
  int64_t total() const;          // the parts' sum times `processes`
  // "parameters 1.00 GiB + gradients 1.00 GiB + ...", then " per rank x 4 ranks on this machine"
  std::string describe() const;
};

class RecursiveModel;

// The host memory of a training process as planned: the model's parameters, gradients,
// activations and scratch, AdamW's two moments (`moment_fraction` of them: 1, or 1 / ranks
// with ZeRO-1), the teacher's weights, activations and scratch.
MemoryPlan training_memory_plan(const RecursiveModel& model, const RecursiveModel* teacher,
                                double moment_fraction);

// How many ranks of this job the launcher put on this machine (OMPI_COMM_WORLD_LOCAL_SIZE,
// MPI_LOCALNRANKS, SLURM_STEP_TASKS_PER_NODE), at most `world`; 1 when none says.
int64_t ranks_on_this_machine(int64_t world);

struct MemorySources {
  std::string proc = "/proc";             // <proc>/self/cgroup, <proc>/meminfo, <proc>/self/status
  std::string cgroup = "/sys/fs/cgroup";  // the cgroup v2 mount (v1: <cgroup>/memory)
  // The defaults, or <root>/proc and <root>/sys/fs/cgroup when RRT_MEMORY_ROOT=<root> is set
  // (tests of the whole trainer against a fake limit).
  static MemorySources from_environment();
};

struct MemoryLimit {
  int64_t bytes = -1;            // what this process may still use; -1: unknown
  int64_t mem_available = -1;    // MemAvailable of /proc/meminfo; -1: unknown
  int64_t cgroup_free = -1;      // the tightest cgroup's limit minus its usage; -1: no limit
  int64_t cgroup_limit = -1;     // that cgroup's limit
  std::string cgroup_path;       // that cgroup's directory
  std::string describe() const;  // which of the two decided, with the numbers
};

MemoryLimit available_memory(const MemorySources& sources = {});

// The check itself: throws rrt::Error (where "memory") when `needed` exceeds limit.bytes, naming
// both numbers, the plan's parts and `hint` (what the user can change). Unknown limits pass.
void check_memory(const MemoryPlan& needed, const MemoryLimit& limit, const std::string& hint);

// The GPU check of train.device: cuda, before the device model allocates: `needed` (the device
// model's planned parameter, gradient and moment block and its activation and scratch blocks,
// DeviceModelOptions::before_allocation) against what is free on the GPU now (`gpu`,
// cuda_memory_info()). Returns "" when it fits or the free memory is unknown, else the refusal:
// both numbers, the GPU (`device_name`), the plan's parts and `hint`. Pure: no CUDA call, so the
// comparison and the message are tested on the CPU.
std::string device_memory_refusal(const MemoryPlan& needed, const DeviceMemoryInfo& gpu,
                                  const std::string& device_name, const std::string& hint);
// Throws rrt::Error (where "memory") with device_memory_refusal's message, if any.
void check_device_memory(const MemoryPlan& needed, const DeviceMemoryInfo& gpu,
                         const std::string& device_name, const std::string& hint);

// The process's resident-set high-water mark (VmHWM of <proc>/self/status); -1 if unknown.
int64_t peak_rss_bytes(const std::string& proc = "/proc");

}  // namespace rrt
