// One source of a weighted mixture (data.sources in the run config; data/mixture.h reads them).
// Its own header, so that the run config holds sources without the loader's headers.
#pragma once

#include <string>

namespace rrt {

struct MixtureSource {
  std::string path;       // a shard set written by `rrt prepare` (or one shard file)
  double weight = 1;      // relative share of the sequences drawn; > 0
  double epochs = 0;      // cap in passes over its train split (may be fractional); 0: no cap
  std::string name = "";  // in logs and metrics; "" means default_source_name(path)
  bool operator==(const MixtureSource&) const = default;
};

// The last component of the path that is not empty ("data/web/" -> "web"; a shard file's name
// without .h5).
std::string default_source_name(const std::string& path);
// The source's name, defaulted.
std::string source_name(const MixtureSource& source);

}  // namespace rrt
