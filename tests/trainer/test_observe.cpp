// What operators read and what protects them (docs/runs.md): TensorBoard event files (TFRecord
// framing, CRCs, parsed Event protos), the profile trace of rrt train, the memory check against
// a fake /proc and cgroup tree, the progress line's FLOPs with a teacher, peak memory, large
// perplexities, and bounds on counts such as train.eval_batches.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "config/config_io.h"
#include "core/crc32c.h"
#include "core/error.h"
#include "evaluation/log_format.h"
#include "model/cuda/device_model.h"
#include "tests/trainer/small_run.h"
#include "trainer/memory_check.h"
#include "trainer/tensorboard.h"
#include "trainer/trainer.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kGiB = int64_t{1} << 30, kMiB = int64_t{1} << 20;

fs::path fresh(const std::string& name) {
  const fs::path p =
      fs::path(::testing::TempDir()) / ("rrt_observe_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <typename Fn>
std::string error_of(Fn&& fn, std::string* where = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (where) *where = e.where();
    return e.what();
  }
  ADD_FAILURE() << "expected rrt::Error";
  return "";
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().starts_with("events.out.tfevents.")) out.push_back(e.path());
  return out;
}

// ---- TensorBoard ------------------------------------------------------------------------------

uint32_t le32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(s[at + i])} << (8 * i);
  return v;
}

TEST(TensorBoard, RecordsAreFramedWithMaskedCrcs) {
  const std::string data = "hello tensorboard";
  const std::string rec = tfrecord_frame(data);
  ASSERT_EQ(rec.size(), 8 + 4 + data.size() + 4);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{static_cast<unsigned char>(rec[i])} << (8 * i);
  EXPECT_EQ(n, data.size());
  EXPECT_EQ(le32(rec, 8), mask_crc32c(crc32c(rec.data(), 8)));
  EXPECT_EQ(rec.substr(12, data.size()), data);
  EXPECT_EQ(le32(rec, 12 + data.size()), mask_crc32c(crc32c(data)));
}

TEST(TensorBoard, WriterOutputParsesBackAsEvents) {
  const fs::path dir = fresh("tb_writer");
  std::string path;
  {
    TensorBoardWriter w(dir.string(), 4);
    path = w.path();
    w.add_scalars(5, {{"train/loss", 2.5}, {"train/lr", 3e-4}});
    w.add_metrics(nlohmann::json{{"step", 10}, {"loss", 2.25}, {"exit1_ce", 3.0}, {"note", "x"}});
    w.add_metrics(nlohmann::json{{"step", 10}, {"val_loss", 2.0}, {"val_ppl", std::exp(2.0)}});
  }
  EXPECT_EQ(event_files(dir).size(), 1u);
  EXPECT_NE(fs::path(path).filename().string().find("tfevents"), std::string::npos);
  std::vector<std::string> records = read_tfrecords(path);
  ASSERT_EQ(records.size(), 5u);
  const TensorBoardEvent first = parse_tensorboard_event(records[0]);
  EXPECT_EQ(first.file_version, "brain.Event:2");
  EXPECT_GT(first.wall_time, 1.5e9);  // seconds since the epoch, not since start
  EXPECT_TRUE(first.scalars.empty());
  EXPECT_FALSE(first.session_start);
  const TensorBoardEvent start = parse_tensorboard_event(records[1]);
  EXPECT_TRUE(start.session_start);
  EXPECT_EQ(start.step, 4);
  records.erase(records.begin());

  const TensorBoardEvent a = parse_tensorboard_event(records[1]);
  EXPECT_EQ(a.step, 5);
  ASSERT_EQ(a.scalars.size(), 2u);
  EXPECT_EQ(a.scalars[0].first, "train/loss");
  EXPECT_FLOAT_EQ(a.scalars[0].second, 2.5f);
  EXPECT_EQ(a.scalars[1].first, "train/lr");
  EXPECT_FLOAT_EQ(a.scalars[1].second, 3e-4f);

  const TensorBoardEvent b = parse_tensorboard_event(records[2]);
  EXPECT_EQ(b.step, 10);
  std::map<std::string, float> got(b.scalars.begin(), b.scalars.end());
  EXPECT_EQ(got.size(), 2u);  // step is the x axis, strings are skipped
  EXPECT_FLOAT_EQ(got["train/loss"], 2.25f);
  EXPECT_FLOAT_EQ(got["train/exit1_ce"], 3.0f);
  const TensorBoardEvent c = parse_tensorboard_event(records[3]);
  std::map<std::string, float> val(c.scalars.begin(), c.scalars.end());
  EXPECT_FLOAT_EQ(val["val/loss"], 2.0f);
  EXPECT_FLOAT_EQ(val["val/ppl"], static_cast<float>(std::exp(2.0)));
}

TEST(TensorBoard, ReaderRejectsCorruptAndTruncatedRecords) {
  const fs::path dir = fresh("tb_corrupt");
  std::string path;
  {
    TensorBoardWriter w(dir.string(), 1);
    path = w.path();
    w.add_scalars(1, {{"train/loss", 1.0}});
  }
  const std::string good = read_file(path);
  std::string where;
  std::string bad = good;
  bad[bad.size() - 6] ^= 0x01;  // a data byte of the last record
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
  EXPECT_NE(error_of([&] { read_tfrecords(path); }, &where).find("bad data CRC"),
            std::string::npos);
  EXPECT_EQ(where, path);
  bad = good;
  bad[0] ^= 0x01;  // the first record's length
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
  EXPECT_NE(error_of([&] { read_tfrecords(path); }).find("bad length CRC"), std::string::npos);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << good.substr(0, good.size() - 3);
  EXPECT_NE(error_of([&] { read_tfrecords(path); }).find("truncated"), std::string::npos);
}

TEST(TensorBoard, Tags) {
  EXPECT_EQ(tensorboard_tag("val_loss"), "val/loss");
  EXPECT_EQ(tensorboard_tag("loss_kd"), "train/loss_kd");
  EXPECT_EQ(tensorboard_tag("comm_wait_ms"), "train/comm_wait_ms");
}

// ---- Memory -----------------------------------------------------------------------------------

std::string kib(int64_t bytes) { return std::to_string(bytes / 1024) + " kB"; }

// A fake machine: /proc/self/cgroup, /proc/meminfo, /proc/self/status and a cgroup tree.
struct FakeMachine {
  fs::path root;
  MemorySources sources() const {
    return {(root / "proc").string(), (root / "sys" / "fs" / "cgroup").string()};
  }
  void meminfo(int64_t available) {
    write_file(root / "proc" / "meminfo",
               "MemTotal:       " + kib(64 * kGiB) + "\nMemFree:        " + kib(kGiB) +
                   "\nMemAvailable:   " + kib(available) + "\nBuffers:        1024 kB\n");
  }
  void cgroup_line(const std::string& text) { write_file(root / "proc" / "self" / "cgroup", text); }
  void file(const std::string& rel, const std::string& text) {
    write_file(root / "sys" / "fs" / "cgroup" / rel, text + "\n");
  }
};

// Slurm (cgroup v2): the --mem limit sits on the job; the process runs in a task below it whose
// own memory.max is "max". The tightest ancestor decides.
TEST(MemoryCheck, CgroupV2LimitOfAnAncestorDecides) {
  FakeMachine m{fresh("mem_v2")};
  m.meminfo(16 * kGiB);
  m.cgroup_line("0::/system.slice/slurmstepd.scope/job_5/step_0/user/task_0\n");
  m.file("system.slice/slurmstepd.scope/job_5/memory.max", std::to_string(4 * kGiB));
  m.file("system.slice/slurmstepd.scope/job_5/memory.current", std::to_string(kGiB));
  m.file("system.slice/slurmstepd.scope/job_5/step_0/memory.max", "max");
  m.file("system.slice/slurmstepd.scope/job_5/step_0/memory.current", std::to_string(kGiB));
  const MemoryLimit got = available_memory(m.sources());
  EXPECT_EQ(got.mem_available, 16 * kGiB);
  EXPECT_EQ(got.cgroup_limit, 4 * kGiB);
  EXPECT_EQ(got.cgroup_free, 3 * kGiB);
  EXPECT_EQ(got.bytes, 3 * kGiB);
  EXPECT_TRUE(got.cgroup_path.ends_with("job_5")) << got.cgroup_path;
  EXPECT_NE(got.describe().find("3.00 GiB free in cgroup"), std::string::npos) << got.describe();
  EXPECT_NE(got.describe().find("limit 4.00 GiB"), std::string::npos) << got.describe();

  // A nearly full step cgroup below it is tighter still.
  m.file("system.slice/slurmstepd.scope/job_5/step_0/memory.max", std::to_string(2 * kGiB));
  m.file("system.slice/slurmstepd.scope/job_5/step_0/memory.current",
         std::to_string(2 * kGiB - 100 * kMiB));
  EXPECT_EQ(available_memory(m.sources()).bytes, 100 * kMiB);
}

TEST(MemoryCheck, CgroupV1AndMemAvailable) {
  FakeMachine m{fresh("mem_v1")};
  m.meminfo(8 * kGiB);
  m.cgroup_line("5:cpuacct,cpu:/job_9\n4:memory:/slurm/uid_0/job_9\n0::/\n");
  m.file("memory/slurm/uid_0/job_9/memory.limit_in_bytes", std::to_string(2 * kGiB));
  m.file("memory/slurm/uid_0/job_9/memory.usage_in_bytes", std::to_string(512 * kMiB));
  m.file("memory/memory.limit_in_bytes", "9223372036854771712");  // v1's "no limit"
  EXPECT_EQ(available_memory(m.sources()).bytes, 2 * kGiB - 512 * kMiB);

  // A limit above what the machine has free: MemAvailable decides.
  m.file("memory/slurm/uid_0/job_9/memory.limit_in_bytes", std::to_string(100 * kGiB));
  const MemoryLimit loose = available_memory(m.sources());
  EXPECT_EQ(loose.bytes, 8 * kGiB);
  EXPECT_NE(loose.describe().find("MemAvailable"), std::string::npos) << loose.describe();

  // No cgroup limit at all, and nothing readable: unknown, and the check lets the run go.
  fs::remove_all(m.root / "sys");
  EXPECT_EQ(available_memory(m.sources()).bytes, 8 * kGiB);
  fs::remove_all(m.root / "proc");
  const MemoryLimit none = available_memory(m.sources());
  EXPECT_EQ(none.bytes, -1);
  MemoryPlan huge;
  huge.parts = {{"activations", int64_t{1} << 50}};
  check_memory(huge, none, "");
}

TEST(MemoryCheck, RefusesWithBothNumbersAndTheHint) {
  MemoryPlan plan;
  plan.parts = {{"parameters", kGiB}, {"gradients", kGiB}, {"activations", 3 * kGiB}};
  plan.processes = 2;
  EXPECT_EQ(plan.total(), 10 * kGiB);
  MemoryLimit limit;
  limit.bytes = limit.mem_available = 6 * kGiB;
  std::string where;
  const std::string e =
      error_of([&] { check_memory(plan, limit, "Lower train.micro_batch."); }, &where);
  EXPECT_EQ(where, "memory");
  EXPECT_NE(e.find("10.00 GiB"), std::string::npos) << e;
  EXPECT_NE(e.find("6.00 GiB"), std::string::npos) << e;
  EXPECT_NE(e.find("activations 3.00 GiB"), std::string::npos) << e;
  EXPECT_NE(e.find("x 2 ranks on this machine"), std::string::npos) << e;
  EXPECT_NE(e.find("Lower train.micro_batch."), std::string::npos) << e;
  limit.bytes = 10 * kGiB;
  check_memory(plan, limit, "");  // fits exactly
}

// train.device: cuda: the device model's planned blocks against the GPU's free memory. A pure
// function, so the comparison and the message are tested without a GPU.
TEST(MemoryCheck, GpuPlanAgainstFreeDeviceMemory) {
  MemoryPlan plan;
  plan.parts = {{"parameters, gradients and AdamW moments", 12 * kGiB},
                {"activations and scratch", 70 * kGiB}};
  DeviceMemoryInfo gpu{.device = 1, .free_bytes = 78 * kGiB, .total_bytes = 80 * kGiB};
  const std::string hint = "Lower train.micro_batch or set train.recompute: all.";
  const std::string e = device_memory_refusal(plan, gpu, "NVIDIA H100 80GB HBM3", hint);
  EXPECT_NE(e.find("82.00 GiB"), std::string::npos) << e;  // needed
  EXPECT_NE(e.find("78.00 GiB"), std::string::npos) << e;  // free
  EXPECT_NE(e.find("80.00 GiB"), std::string::npos) << e;  // total
  EXPECT_NE(e.find("GPU 1 (NVIDIA H100 80GB HBM3)"), std::string::npos) << e;
  EXPECT_NE(e.find("activations and scratch 70.00 GiB"), std::string::npos) << e;
  EXPECT_NE(e.find(hint), std::string::npos) << e;
  EXPECT_NE(e.find("train.memory_check=false"), std::string::npos) << e;
  std::string where;
  const std::string thrown =
      error_of([&] { check_device_memory(plan, gpu, "NVIDIA H100 80GB HBM3", hint); }, &where);
  EXPECT_EQ(where, "memory");
  EXPECT_NE(thrown.find("82.00 GiB"), std::string::npos) << thrown;

  gpu.free_bytes = 82 * kGiB;  // fits exactly
  EXPECT_EQ(device_memory_refusal(plan, gpu, "", hint), "");
  check_device_memory(plan, gpu, "", hint);
  gpu.free_bytes = 82 * kGiB - 1;  // one byte short
  EXPECT_NE(device_memory_refusal(plan, gpu, "", hint), "");
  // Unknown free memory (no CUDA, a failed query): the run goes ahead; the stub says unknown.
  EXPECT_EQ(device_memory_refusal(plan, DeviceMemoryInfo{}, "", hint), "");
  EXPECT_EQ(cuda_compiled() ? 0 : cuda_memory_info().free_bytes, cuda_compiled() ? 0 : -1);
}

// Ranks on one machine share its memory: the launcher says how many there are.
TEST(MemoryCheck, RanksOnThisMachine) {
  const char* vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                        "SLURM_STEP_TASKS_PER_NODE"};
  for (const char* v : vars) ::unsetenv(v);
  EXPECT_EQ(ranks_on_this_machine(8), 1);
  ::setenv("SLURM_STEP_TASKS_PER_NODE", "4(x2)", 1);  // four on each of two nodes
  EXPECT_EQ(ranks_on_this_machine(8), 4);
  EXPECT_EQ(ranks_on_this_machine(2), 2);          // never more than the world
  ::setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "3", 1);  // mpirun's own count comes first
  EXPECT_EQ(ranks_on_this_machine(8), 3);
  for (const char* v : vars) ::unsetenv(v);
}

TEST(MemoryCheck, PeakRss) {
  FakeMachine m{fresh("mem_status")};
  write_file(m.root / "proc" / "self" / "status",
             "Name:\trrt\nVmPeak:\t 9000000 kB\nVmHWM:\t   123456 kB\nVmRSS:\t  100000 kB\n");
  EXPECT_EQ(peak_rss_bytes((m.root / "proc").string()), 123456 * int64_t{1024});
  EXPECT_GT(peak_rss_bytes(), 0);  // this process, from the real /proc
  EXPECT_EQ(format_bytes(1536 * kMiB), "1.50 GiB");
  EXPECT_EQ(format_bytes(3 * kMiB / 2), "1.5 MiB");
}

// ---- The trainer ------------------------------------------------------------------------------

RunConfig small_run(const fs::path& run_dir) {
  RunConfig c;
  c.model = testing::tiny_relaxed_model();
  c.data.path = testing::document_shards();
  c.data.val_fraction = 0.1;
  c.optim.warmup_steps = 2;
  c.train.steps = 6;
  c.train.micro_batch = 2;
  c.train.grad_accum = 2;
  c.train.seq_len = 32;
  c.train.eval_every = 3;
  c.train.eval_batches = 1;
  c.train.run_dir = run_dir.string();
  c.checkpoint.every = 3;
  c.log.every = 2;
  return c;
}

// Every training and validation line of metrics.jsonl is in the event file, same step, same
// value (as float).
TEST(TrainerObservability, EventFileMirrorsMetrics) {
  const fs::path dir = fresh("run_tb");
  Trainer(small_run(dir)).run();
  const auto files = event_files(dir);
  ASSERT_EQ(files.size(), 1u);
  std::map<std::pair<int64_t, std::string>, float> scalars;
  for (const std::string& r : read_tfrecords(files[0].string())) {
    const TensorBoardEvent e = parse_tensorboard_event(r);
    for (const auto& [tag, v] : e.scalars) scalars[{e.step, tag}] = v;
  }
  std::ifstream metrics(dir / "metrics.jsonl");
  std::string line;
  int train_lines = 0, val_lines = 0;
  while (std::getline(metrics, line)) {
    const auto j = nlohmann::json::parse(line);
    const int64_t step = j["step"];
    for (const auto& [key, value] : j.items()) {
      if (key == "step") continue;
      const auto it = scalars.find({step, tensorboard_tag(key)});
      ASSERT_NE(it, scalars.end()) << key << " at step " << step;
      EXPECT_FLOAT_EQ(it->second, static_cast<float>(value.get<double>())) << key;
    }
    (j.contains("val_loss") ? val_lines : train_lines) += 1;
  }
  EXPECT_EQ(train_lines, 3);  // steps 2, 4, 6
  EXPECT_EQ(val_lines, 2);    // steps 3, 6
  EXPECT_TRUE(scalars.count({6, "train/peak_rss_gib"}));
  EXPECT_GT((scalars[{6, "train/peak_rss_gib"}]), 0.0f);

  // A resumed invocation writes a second file, which opens with a SessionLog START at its first
  // step: TensorBoard then shows the steps it repeats once.
  const fs::path resumed = fresh("run_tb_resume");
  Trainer(small_run(resumed)).run(/*stop_after=*/3);
  Trainer(small_run(resumed)).run();
  const auto two = event_files(resumed);
  ASSERT_EQ(two.size(), 2u);
  std::vector<int64_t> starts;
  for (const auto& f : two)
    for (const std::string& r : read_tfrecords(f.string()))
      if (const TensorBoardEvent e = parse_tensorboard_event(r); e.session_start)
        starts.push_back(e.step);
  std::sort(starts.begin(), starts.end());
  EXPECT_EQ(starts, (std::vector<int64_t>{1, 4}));

  // log.tensorboard: false writes none.
  const fs::path off = fresh("run_tb_off");
  RunConfig c = small_run(off);
  c.log.tensorboard = false;
  c.train.steps = 2;
  Trainer(c).run();
  EXPECT_TRUE(event_files(off).empty());
}

// log.profile_steps: a Chrome trace of the steps after the first, with the trainer's phases
// nested inside each step.
TEST(TrainerObservability, ProfileTraceHoldsTheStepPhases) {
  const fs::path dir = fresh("run_profile");
  RunConfig c = small_run(dir);
  c.log.profile_steps = 3;  // steps 2, 3, 4 (step 3 evaluates and writes a checkpoint)
  Trainer(c).run();
  const fs::path path = dir / "profile_rank0.json";
  ASSERT_TRUE(fs::exists(path));
  std::ifstream in(path);
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::vector<nlohmann::json> spans;
  for (const auto& e : doc["traceEvents"])
    if (e["ph"] == "X") spans.push_back(e);
  std::map<std::string, int> count;
  std::vector<int64_t> steps;
  for (const auto& e : spans) {
    ++count[e["name"].get<std::string>()];
    EXPECT_GE(e["dur"].get<double>(), 0.0) << e.dump();
    if (e["name"] == "step") steps.push_back(e["args"]["step"]);
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(count["micro_batch"], 6);  // grad_accum 2
  EXPECT_EQ(count["data"], 6);
  EXPECT_EQ(count["forward_backward"], 6);
  EXPECT_EQ(count["grad_norm"], 3);
  EXPECT_EQ(count["optimizer"], 3);
  EXPECT_EQ(count["evaluate"], 1);
  EXPECT_EQ(count["checkpoint"], 1);
  // The model's own spans (model/recursive_core_impl.h, model/decoder_layer_impl.h): every
  // position's backward once per micro-batch, seven projections and one attention in each;
  // forwards and the head also run in the validation pass.
  const int L = static_cast<int>(c.model.positions());
  EXPECT_EQ(count["layer.backward"], 6 * L);
  EXPECT_EQ(count["attention.backward"], 6 * L);
  EXPECT_EQ(count["project.backward"], 6 * L * 7);
  EXPECT_GT(count["layer.forward"], 6 * L);
  EXPECT_GT(count["attention"], 6 * L);
  EXPECT_GT(count["project"], 6 * L * 7);
  EXPECT_GT(count["head_loss"], 6);
  std::set<int64_t> positions;
  for (const auto& e : spans)
    if (e["name"] == "layer.backward") positions.insert(e["args"]["position"].get<int64_t>());
  EXPECT_EQ(static_cast<int>(positions.size()), L);
  // Each phase lies inside one step span, on the step's thread.
  for (const auto& e : spans) {
    if (e["name"] == "step") continue;
    int parents = 0;
    for (const auto& s : spans)
      if (s["name"] == "step" && s["tid"] == e["tid"] && s["ts"] <= e["ts"] &&
          e["ts"].get<double>() + e["dur"].get<double>() <=
              s["ts"].get<double>() + s["dur"].get<double>())
        ++parents;
    EXPECT_EQ(parents, 1) << e.dump();
  }
  // No profile asked for, none written.
  const fs::path quiet = fresh("run_noprofile");
  RunConfig q = small_run(quiet);
  q.train.steps = 2;
  Trainer(q).run();
  EXPECT_FALSE(fs::exists(quiet / "profile_rank0.json"));
}

// The memory check runs before the arenas are written: against a fake 256 MiB cgroup, a
// micro-batch whose activations need ~1 GiB is refused with both numbers, and the process never
// touched that memory (its peak RSS barely moves).
TEST(TrainerObservability, OversizedRunIsRefusedBeforeItsMemoryIsTouched) {
  FakeMachine m{fresh("mem_trainer_root")};
  m.meminfo(64 * kGiB);
  m.cgroup_line("0::/job_1\n");
  m.file("job_1/memory.max", std::to_string(256 * kMiB));
  m.file("job_1/memory.current", std::to_string(16 * kMiB));
  ::setenv("RRT_MEMORY_ROOT", m.root.c_str(), 1);
  RunConfig c = small_run(fresh("run_mem"));
  c.train.micro_batch = 2048;  // 65536 tokens: ~1 GiB of activations at this width
  const int64_t hwm_before = peak_rss_bytes();
  std::string where;
  const std::string e = error_of([&] { Trainer trainer(c); }, &where);
  const int64_t hwm_after = peak_rss_bytes();
  ::unsetenv("RRT_MEMORY_ROOT");
  EXPECT_EQ(where, "memory") << e;
  EXPECT_NE(e.find("240.0 MiB free in cgroup"), std::string::npos) << e;
  EXPECT_NE(e.find("activations"), std::string::npos) << e;
  EXPECT_NE(e.find("train.micro_batch"), std::string::npos) << e;
  EXPECT_LT(hwm_after - hwm_before, 128 * kMiB) << "the refused plan was written to memory";

  // The same run with the check off, or with room, is accepted (not started).
  c.train.micro_batch = 2;
  ::setenv("RRT_MEMORY_ROOT", m.root.c_str(), 1);
  EXPECT_NO_THROW(Trainer trainer(c));
  ::unsetenv("RRT_MEMORY_ROOT");
}

// A teacher is counted twice: in the memory plan (its weights and forward activations) and in
// the logged GFLOP/s (its forward), whose share the line names.
TEST(TrainerObservability, TeacherForwardCountsInFlops) {
  const fs::path teacher_dir = fresh("teacher"), student_dir = fresh("student");
  RunConfig t = small_run(teacher_dir);
  t.model.recursion = {.block_layers = 4, .loops = 1};
  t.model.lora = {};
  t.model.model.d_model = 48;
  t.train.steps = 1;
  const TrainSummary teacher = Trainer(t).run();
  RunConfig s = small_run(student_dir);
  s.distill.teacher = teacher.last_checkpoint;
  s.train.steps = 2;
  Trainer(s).run();
  std::ifstream metrics(student_dir / "metrics.jsonl");
  std::string line;
  nlohmann::json logged;
  while (std::getline(metrics, line))
    if (line.find("\"loss\"") != std::string::npos) logged = nlohmann::json::parse(line);
  ASSERT_TRUE(logged.contains("teacher_flops_fraction")) << logged.dump();
  const int64_t N = s.train.micro_batch, T = s.train.seq_len;
  const double student = model_train_flops(s.model, N, T);
  const double forward = model_train_flops(t.model, N, T) / 3.0;
  EXPECT_NEAR(logged["teacher_flops_fraction"].get<double>(), forward / (student + forward), 1e-12);
  // gflops = (student + teacher forward) x grad_accum / step time: with tokens/s it gives the
  // FLOPs per token back.
  const double per_token =
      logged["gflops"].get<double>() * 1e9 / logged["tokens_per_s"].get<double>();
  EXPECT_NEAR(per_token, (student + forward) / static_cast<double>(N * T), 1e-6 * per_token);
}

// ---- Numbers and bounds -----------------------------------------------------------------------

TEST(LogFormat, LargePerplexitiesInScientificNotation) {
  EXPECT_EQ(format_perplexity(8.1734), "8.17");
  EXPECT_EQ(format_perplexity(99999.0), "99999.00");
  EXPECT_EQ(format_perplexity(123456.0), "1.235e+05");
  EXPECT_EQ(format_perplexity(1.7e38), "1.700e+38");
  EXPECT_EQ(format_perplexity(INFINITY), "inf");
  EXPECT_EQ(format_perplexity(8.1734, 3), "8.173");
  EXPECT_EQ(throughput_text(21.66, 0, 0, -1), "21.7 GFLOP/s");
  EXPECT_EQ(throughput_text(21.66, 0.613, 0.4012, 1288490189),
            "21.7 GFLOP/s (teacher 61%) | MFU 40.1% | peak mem 1.20 GiB");
  EXPECT_DOUBLE_EQ(table_peak_tflops("NVIDIA H100 80GB HBM3"), 989.0);
  EXPECT_DOUBLE_EQ(table_peak_tflops("NVIDIA A100-SXM4-40GB"), 312.0);
  EXPECT_DOUBLE_EQ(table_peak_tflops("Tesla T4"), 0.0);
}

const std::string kSmallYaml =
    "model: {n_layers: 4, vocab: 257, d_model: 64, n_heads: 4, n_kv_heads: 2, ffn: 128, "
    "max_seq_len: 128}\nrecursion: {loops: 2}\ntrain: {seq_len: 64}\n";

// train.eval_batches=1e9 used to start a validation pass of days with no output.
TEST(ConfigBounds, CountsHaveUpperBounds) {
  std::string where;
  std::string e = error_of(
      [] { parse_run_config(kSmallYaml, "small.yaml", {"train.eval_batches=1e9"}); }, &where);
  EXPECT_NE(e.find("train.eval_batches"), std::string::npos) << e;
  EXPECT_NE(e.find("100000"), std::string::npos) << e;
  for (const char* o : {"train.grad_accum=1000000", "train.threads=100000",
                        "log.profile_steps=5000", "log.profile_steps=-1"})
    EXPECT_NE(error_of([&] {
                parse_run_config(kSmallYaml, "small.yaml", {o});
              }).find(std::string(o).substr(0, std::string(o).find('='))),
              std::string::npos)
        << o;
  const RunConfig ok = parse_run_config(
      kSmallYaml, "small.yaml",
      {"train.eval_batches=100000", "log.profile_steps=3", "log.tensorboard=false"});
  EXPECT_EQ(ok.train.eval_batches, 100000);
  EXPECT_EQ(ok.log.profile_steps, 3);
  EXPECT_FALSE(ok.log.tensorboard);
  EXPECT_TRUE(RunConfig{}.log.tensorboard);
  EXPECT_TRUE(RunConfig{}.train.memory_check);
}

}  // namespace
}  // namespace rrt
