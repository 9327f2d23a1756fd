// Parallel and resumable `rrt prepare`: 1, 2 and 4 threads write the same shard set (shards and
// manifest); a preparation killed with SIGKILL (a child process, killed at a shard boundary or
// at whatever point a timer lands) and run again ends with exactly the shard set of an
// uninterrupted one; a rerun with other inputs or options is refused. The same over 1, 2 and 4
// ranks (threads standing in for MPI processes), killed in either stage and resumed with
// another rank count; one rank's bad input fails every rank and leaves nothing.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "data/input_parquet.h"
#include "data/prepare.h"
#include "data/prepare_ranks.h"
#include "data/tokenizer.h"
#include "tests/data/prepare_test_util.h"

namespace rrt {
namespace {

using test::contains;
using test::error_message;
using test::TempDir;
namespace fs = std::filesystem;

// Several files of every kind, one with more lines than a batch holds (4096), documents of
// varied lengths (so shard boundaries fall inside documents) and a few bad lines to skip.
std::vector<std::string> make_corpus(const TempDir& dir, int scale = 1) {
  std::vector<std::string> inputs;
  uint64_t state = 12345;
  auto random = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  auto document = [&] {
    std::string text;
    const int words = 1 + static_cast<int>(random() % 40);
    for (int w = 0; w < words; ++w) text += "w" + std::to_string(random() % 1000) + " ";
    return text;
  };
  for (int f = 0; f < 4; ++f) {
    std::string jsonl;
    const int lines = f == 1 ? 6000 * scale : 300 * scale;
    for (int i = 0; i < lines; ++i) {
      if (i % 997 == 5) jsonl += "{\"no_text\": 1}\n";
      jsonl += nlohmann::json({{"text", document()}}).dump() + "\n";
    }
    const std::string name = "in/part" + std::to_string(f) + ".jsonl";
    if (f == 0) {
      test::write_text(dir / name, jsonl);
      inputs.push_back(dir / name);
    } else if (f == 3) {
      test::write_gzip(dir / (name + ".gz"), jsonl, 2);
      inputs.push_back(dir / (name + ".gz"));
    } else {
      test::write_zstd(dir / (name + ".zst"), jsonl, 3);
      inputs.push_back(dir / (name + ".zst"));
    }
  }
  test::write_text(dir / "in/plain.txt", document());
  inputs.push_back(dir / "in/plain.txt");
  if (parquet_supported()) {
    std::vector<std::optional<std::string>> rows;
    for (int i = 0; i < 2500 * scale; ++i) rows.push_back(document());
    write_parquet_texts(dir / "in/rows.parquet", "text", rows, 700);
    inputs.push_back(dir / "in/rows.parquet");
  }
  return inputs;
}

PrepareOptions options_for(const std::vector<std::string>& inputs, const std::string& out,
                           int threads) {
  PrepareOptions options;
  options.inputs = inputs;
  options.out_dir = out;
  options.progress = false;
  options.skip_bad = true;
  options.shard_tokens = 50000;
  options.threads = threads;
  return options;
}

TEST(PrepareParallel, OneTwoAndFourThreadsWriteTheSameShardSet) {
  TempDir dir;
  const std::vector<std::string> inputs = make_corpus(dir);
  const PrepareSummary one = prepare_shards(options_for(inputs, dir / "t1", 1));
  EXPECT_GT(one.shards, 5);
  EXPECT_EQ(one.skipped_documents.at("missing field"), 10);  // i % 997 == 5
  const std::vector<std::string> reference = test::shard_set_contents(dir / "t1");
  for (int threads : {2, 4}) {
    SCOPED_TRACE(threads);
    const std::string out = dir / ("t" + std::to_string(threads));
    const PrepareSummary summary = prepare_shards(options_for(inputs, out, threads));
    EXPECT_EQ(summary.tokens, one.tokens);
    EXPECT_EQ(test::shard_set_contents(out), reference);
  }
}

// `world` ranks as threads of this process, their collective a barrier (what MPI's all-reduce
// does for `rrt prepare` under mpirun). Returns rank 0's summary; rethrows the first rank's error.
PrepareSummary prepare_on_thread_ranks(const PrepareOptions& options, int world) {
  const auto tokenizer = make_tokenizer(options.tokenizer);
  std::atomic<int> failing{0};
  bool all_ok = true;
  std::barrier sync(world, [&]() noexcept { all_ok = failing.exchange(0) == 0; });
  std::vector<PrepareSummary> summaries(static_cast<size_t>(world));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      PrepareRanks ranks;
      ranks.rank = r;
      ranks.world = world;
      ranks.all_ok = [&](bool ok) {
        if (!ok) ++failing;
        sync.arrive_and_wait();
        return all_ok;
      };
      try {
        summaries[static_cast<size_t>(r)] = prepare_shards_on_ranks(options, *tokenizer, ranks);
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (std::thread& t : threads) t.join();
  // The error of a rank that failed itself, rather than another's note that one did.
  std::exception_ptr note;
  for (const std::exception_ptr& e : errors) {
    if (!e) continue;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      if (std::string(x.what()).find("another rank failed") == std::string::npos) throw;
      note = e;
    }
  }
  if (note) std::rethrow_exception(note);
  return summaries[0];
}

// Runs prepare (on `world` thread ranks, or prepare_shards when 0) in a child process that
// `kill` stops; returns once the child is dead by SIGKILL. With wait_for_kill, a child that
// finishes first waits for its kill (a timer that fired late).
template <typename Kill>
void run_and_kill(const PrepareOptions& options, Kill kill, bool wait_for_kill = false,
                  int world = 0) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      PrepareOptions child = options;
      kill(child);
      if (world > 0)
        prepare_on_thread_ranks(child, world);
      else
        prepare_shards(child);
    } catch (...) {
      _exit(3);
    }
    while (wait_for_kill) ::pause();
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status))
      << "the child was not killed (exit " << WEXITSTATUS(status) << ")";
  ASSERT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(PrepareParallel, KilledAtAShardAndRerunEqualsAnUninterruptedRun) {
  TempDir dir;
  const std::vector<std::string> inputs = make_corpus(dir);
  prepare_shards(options_for(inputs, dir / "whole", 2));
  const std::vector<std::string> reference = test::shard_set_contents(dir / "whole");

  for (int64_t kill_after : {0, 3}) {
    SCOPED_TRACE(kill_after);
    const std::string out = dir / ("killed" + std::to_string(kill_after));
    run_and_kill(options_for(inputs, out, 2), [&](PrepareOptions& child) {
      child.after_shard = [kill_after](int64_t shard) {
        if (shard == kill_after) ::raise(SIGKILL);
      };
    });
    // What the kill left: the marker, the journal and the shards up to the kill.
    EXPECT_TRUE(fs::exists(out + "/INCOMPLETE"));
    EXPECT_TRUE(fs::exists(out + "/prepare_state.json"));
    EXPECT_EQ(test::shard_files(out).size(), static_cast<size_t>(kill_after + 1));
    // Resumed with another thread count: the output does not depend on it.
    const PrepareSummary summary = prepare_shards(options_for(inputs, out, 1));
    EXPECT_TRUE(summary.resumed);
    EXPECT_EQ(test::shard_set_contents(out), reference);
  }
}

TEST(PrepareParallel, KilledAtAnyMomentAndRerunEqualsAnUninterruptedRun) {
  TempDir dir;
  const std::vector<std::string> inputs = make_corpus(dir, 2);
  PrepareOptions options = options_for(inputs, dir / "whole", 2);
  options.shard_tokens = 20000;
  const auto start = std::chrono::steady_clock::now();
  prepare_shards(options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::vector<std::string> reference = test::shard_set_contents(dir / "whole");

  // Timer kills at fractions of the run's length: in a shard write, between a shard and its
  // journal, while reading. Wherever each lands, the rerun ends with the same shard set.
  int interrupted = 0;
  for (double fraction : {0.1, 0.3, 0.5, 0.7}) {
    SCOPED_TRACE(fraction);
    const std::string out = dir / ("killed" + std::to_string(fraction));
    options.out_dir = out;
    run_and_kill(
        options,
        [&](PrepareOptions&) {
          std::thread([seconds, fraction] {
            std::this_thread::sleep_for(std::chrono::duration<double>(seconds * fraction));
            ::raise(SIGKILL);
          }).detach();
        },
        true);
    // Unless the child had finished before its timer fired (a loaded machine), rerun it.
    if (!fs::exists(out + "/manifest.json") || fs::exists(out + "/INCOMPLETE")) {
      ++interrupted;
      prepare_shards(options);
    }
    EXPECT_EQ(test::shard_set_contents(out), reference);
  }
  EXPECT_GE(interrupted, 2);
}

TEST(PrepareParallel, AnUnfinishedSetOfOtherInputsOrOptionsIsRefused) {
  TempDir dir;
  const std::vector<std::string> inputs = make_corpus(dir);
  const std::string out = dir / "out";
  run_and_kill(options_for(inputs, out, 2), [](PrepareOptions& child) {
    child.after_shard = [](int64_t shard) {
      if (shard == 1) ::raise(SIGKILL);
    };
  });
  PrepareOptions other = options_for(inputs, out, 2);
  other.shard_tokens = 40000;
  std::string message = error_message([&] { prepare_shards(other); });
  EXPECT_TRUE(contains(message, "unfinished preparation of other inputs or options")) << message;
  EXPECT_TRUE(contains(message, "shard_tokens was 50000, now 40000")) << message;

  other = options_for({inputs.begin(), inputs.end() - 1}, out, 2);
  message = error_message([&] { prepare_shards(other); });
  EXPECT_TRUE(contains(message, "input files")) << message;

  test::write_text(inputs[0], test::read_bytes(inputs[0]) + "{\"text\": \"appended\"}\n");
  message = error_message([&] { prepare_shards(options_for(inputs, out, 2)); });
  EXPECT_TRUE(contains(message, inputs[0] + " changed size")) << message;
  // Refusals delete nothing: the unfinished set is still there.
  EXPECT_EQ(test::shard_files(out).size(), 2u);
}

TEST(PrepareRanks, OneTwoAndFourRanksWriteTheShardSetOfOneProcess) {
  TempDir dir;
  const std::vector<std::string> inputs = make_corpus(dir);
  PrepareOptions options = options_for(inputs, dir / "one", 2);
  options.shard_tokens = 20000;  // many shards, so every rank writes some
  const PrepareSummary one = prepare_shards(options);
  const std::vector<std::string> reference = test::shard_set_contents(dir / "one");
  for (int world : {1, 2, 4}) {
    SCOPED_TRACE(world);
    options.out_dir = dir / ("ranks" + std::to_string(world));
    options.threads = 1;
    const PrepareSummary summary = prepare_on_thread_ranks(options, world);
    EXPECT_EQ(summary.tokens, one.tokens);
    EXPECT_EQ(summary.documents, one.documents);
    EXPECT_EQ(summary.shards, one.shards);
    EXPECT_EQ(summary.skipped_documents, one.skipped_documents);
    EXPECT_EQ(test::shard_set_contents(options.out_dir), reference);
  }
}

TEST(PrepareRanks, KilledInEitherStageAndResumedWithOtherRanksEqualsOneProcess) {
  TempDir dir;
  const std::vector<std::string> inputs = make_corpus(dir);
  PrepareOptions options = options_for(inputs, dir / "one", 1);
  options.shard_tokens = 20000;
  prepare_shards(options);
  const std::vector<std::string> reference = test::shard_set_contents(dir / "one");

  // Killed after the first file's part (stage 1), resumed on 4 ranks.
  options.out_dir = dir / "killed_tokenising";
  run_and_kill(
      options, [](PrepareOptions& child) { child.after_part = [](int64_t) { ::raise(SIGKILL); }; },
      false, 2);
  EXPECT_TRUE(fs::exists(options.out_dir + "/INCOMPLETE"));
  EXPECT_TRUE(fs::exists(options.out_dir + "/.parts/state.json"));
  EXPECT_TRUE(test::shard_files(options.out_dir).empty());
  PrepareSummary summary = prepare_on_thread_ranks(options, 4);
  EXPECT_TRUE(summary.resumed);
  EXPECT_EQ(test::shard_set_contents(options.out_dir), reference);

  // Killed after its second shard (stage 2), resumed by a plain one-process run, which goes on
  // from the parts the ranks left.
  options.out_dir = dir / "killed_writing";
  run_and_kill(
      options,
      [](PrepareOptions& child) {
        child.after_shard = [](int64_t shard) {
          if (shard == 2) ::raise(SIGKILL);
        };
      },
      false, 2);
  EXPECT_FALSE(test::shard_files(options.out_dir).empty());
  summary = prepare_shards(options);
  EXPECT_TRUE(summary.resumed);
  EXPECT_EQ(test::shard_set_contents(options.out_dir), reference);
  EXPECT_FALSE(fs::exists(options.out_dir + "/.parts"));
}

TEST(PrepareRanks, OneRanksBadLineFailsEveryRankAndLeavesNothing) {
  TempDir dir;
  // Clean files (make_corpus's have bad lines in several files) and one bad line in one file.
  std::vector<std::string> inputs;
  for (int f = 0; f < 4; ++f) {
    std::string jsonl;
    for (int i = 0; i < 200 * (f + 1); ++i)
      jsonl +=
          "{\"text\": \"document " + std::to_string(i) + " of file " + std::to_string(f) + "\"}\n";
    inputs.push_back(dir / ("in/good" + std::to_string(f) + ".jsonl"));
    test::write_text(inputs.back(), jsonl);
  }
  test::write_text(dir / "in/bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": 3}\n");
  inputs.push_back(dir / "in/bad.jsonl");
  PrepareOptions options = options_for(inputs, dir / "out", 1);
  options.skip_bad = false;
  const std::string message = error_message([&] { prepare_on_thread_ranks(options, 3); });
  EXPECT_TRUE(contains(message, "bad.jsonl:2")) << message;
  test::expect_nothing_left(options.out_dir);
  EXPECT_FALSE(fs::exists(options.out_dir + "/.parts"));

  // A set the ranks refuse is left as it was: a complete one.
  options.skip_bad = true;
  prepare_on_thread_ranks(options, 2);
  const std::vector<std::string> done = test::shard_set_contents(options.out_dir);
  EXPECT_TRUE(
      contains(error_message([&] { prepare_on_thread_ranks(options, 2); }), "already holds"));
  EXPECT_EQ(test::shard_set_contents(options.out_dir), done);
}

}  // namespace
}  // namespace rrt
