#include "inference/engine.h"

#include "core/error.h"

namespace rrt::inference {

void Engine::group_by_stage(const StageRow* rows, int64_t n, int64_t j,
                            std::vector<StageGroup>& groups) const {
  groups.clear();
  const int64_t B = block_layers();
  for (int64_t i = 0; i < n; ++i) {
    if (groups.empty() || rows[i].stage != rows[groups.back().begin].stage) {
      RRT_CHECK(rows[i].stage >= 0 && rows[i].stage < stages(), "Engine", "stage ", rows[i].stage,
                " outside 0..", stages() - 1);
      RRT_CHECK(static_cast<int64_t>(groups.size()) < stages(), "Engine",
                "rows of one stage must be contiguous");
      groups.push_back({i, i + 1, rows[i].stage * B + j});
    } else {
      groups.back().end = i + 1;
    }
  }
}

}  // namespace rrt::inference
