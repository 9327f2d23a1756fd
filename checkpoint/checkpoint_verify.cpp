#include "checkpoint/checkpoint_verify.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "checkpoint/checkpoint.h"

namespace rrt {

namespace fs = std::filesystem;

uint32_t checksum_bytes(const void* data, size_t n, uint32_t crc) {
  const auto* bytes = static_cast<const Bytef*>(data);
  // zlib's CRC runs at about 1 GB/s on one core: large tensors are cut into pieces whose CRCs
  // are computed in parallel and joined with crc32_combine (the same number as one pass).
  constexpr size_t kPiece = size_t{4} << 20;
  if (n < 2 * kPiece) return static_cast<uint32_t>(crc32_z(crc, bytes, n));
  const int64_t pieces = static_cast<int64_t>((n + kPiece - 1) / kPiece);
  std::vector<uLong> part(static_cast<size_t>(pieces));
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < pieces; ++p) {
    const size_t begin = static_cast<size_t>(p) * kPiece;
    part[static_cast<size_t>(p)] = crc32_z(0, bytes + begin, std::min(kPiece, n - begin));
  }
  uLong out = crc;
  for (int64_t p = 0; p < pieces; ++p) {
    const size_t begin = static_cast<size_t>(p) * kPiece;
    out = crc32_combine64(out, part[static_cast<size_t>(p)],
                          static_cast<z_off64_t>(std::min(kPiece, n - begin)));
  }
  return static_cast<uint32_t>(out);
}

size_t load_newest_intact(
    const std::vector<std::string>& checkpoints, const std::string& policy, ParameterSet& params,
    AdamW* optimizer, CheckpointContents& out,
    const std::function<void(const CheckpointContents&, const std::string&)>& check_config) {
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
        check_config(read_checkpoint_header(path), path);
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
    check_config(read_checkpoint_header(path), path);
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
