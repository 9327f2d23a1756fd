#include "trainer/checkpoint_verify.h"

#include <zlib.h>

#include <cstdio>
#include <filesystem>

#include "trainer/checkpoint.h"

namespace rrt {

namespace fs = std::filesystem;

uint32_t checksum_bytes(const void* data, size_t n, uint32_t crc) {
  return static_cast<uint32_t>(crc32_z(crc, static_cast<const Bytef*>(data), n));
}

size_t load_newest_intact(
    const std::vector<std::string>& checkpoints, const std::string& policy, ParameterSet& params,
    AdamW* optimizer, CheckpointContents& out,
    const std::function<void(const std::string&, const std::string&)>& check_config) {
  RRT_CHECK(!checkpoints.empty(), "resume", "no checkpoint to resume from");
  RRT_CHECK(policy == "refuse" || policy == "fallback", "checkpoint.on_corrupt", "unknown value '",
            policy, "'; expected refuse or fallback");
  std::vector<std::string> corrupt;  // newest first, with what is wrong with each
  std::vector<std::string> reasons;
  for (size_t k = checkpoints.size(); k-- > 0;) {
    const std::string& path = checkpoints[k];
    try {
      if (corrupt.empty()) {
        // The newest: check its config before reading its weights, then load (and verify).
        check_config(read_checkpoint_header(path).config_yaml, path);
        out = load_checkpoint(path, params, optimizer);
        return k;
      }
      // An older one is only a candidate: read every dataset before touching the model.
      verify_checkpoint(path);
    } catch (const CheckpointCorrupt& e) {
      corrupt.push_back(path);
      reasons.push_back(e.what());
      continue;
    }
    // checkpoints[k] is intact; the newer ones are not.
    std::string list;
    for (size_t i = 0; i < corrupt.size(); ++i) list += "\n  " + reasons[i];
    if (policy == "refuse")
      RRT_FAIL("resume", "the newest checkpoint", corrupt.size() > 1 ? "s are" : " is",
               " corrupt:", list, "\nThe newest intact checkpoint is ", path,
               ". To resume from it, set checkpoint.on_corrupt=fallback (the corrupt files are "
               "then renamed to <name>.corrupt), or move the corrupt files out of the run "
               "directory yourself (docs/runs.md, \"After a refused resume\").");
    for (const std::string& bad : corrupt) {
      std::error_code ec;
      fs::rename(bad, bad + ".corrupt", ec);
      RRT_CHECK(!ec, bad, "cannot rename the corrupt checkpoint to ", bad,
                ".corrupt: ", ec.message());
    }
    std::fprintf(stderr,
                 "warning: corrupt checkpoint%s renamed to *.corrupt:%s\nresuming from "
                 "the newest intact checkpoint, %s (checkpoint.on_corrupt: fallback)\n",
                 corrupt.size() > 1 ? "s" : "", list.c_str(), path.c_str());
    check_config(read_checkpoint_header(path).config_yaml, path);
    out = load_checkpoint(path, params, optimizer);
    return k;
  }
  std::string list;
  for (const std::string& r : reasons) list += "\n  " + r;
  RRT_FAIL("resume", "every checkpoint in the run directory is corrupt:", list,
           "\nRestore one from a copy, or start afresh with checkpoint.resume=false in a new "
           "train.run_dir.");
}

}  // namespace rrt
