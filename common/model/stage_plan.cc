#include "common/model/stage_plan.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace resbm {

absl::StatusOr<std::vector<StageSpec>> PlanStages(int64_t num_layers, int64_t num_stages,
                                                  const std::vector<int64_t>& layers_per_stage) {
  if (num_layers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_layers: ", num_layers, "; expected at least 1"));
  }
  if (num_stages < 1 || num_stages > num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("num_stages: ", num_stages, "; expected 1..",
                                                   num_layers, " (at least one block per stage)"));
  }
  std::vector<int64_t> sizes = layers_per_stage;
  if (sizes.empty()) {
    for (int64_t s = 0; s < num_stages; ++s) {
      sizes.push_back(num_layers / num_stages + (s < num_layers % num_stages ? 1 : 0));
    }
  } else {
    if (static_cast<int64_t>(sizes.size()) != num_stages) {
      return absl::InvalidArgumentError(
          absl::StrCat("layers_per_stage: [", absl::StrJoin(sizes, ","), "] has ", sizes.size(),
                       " entries; expected one per stage (", num_stages, ")"));
    }
    int64_t total = 0;
    for (size_t s = 0; s < sizes.size(); ++s) {
      if (sizes[s] < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("layers_per_stage[", s, "]: ", sizes[s], "; expected at least 1"));
      }
      total += sizes[s];
    }
    if (total != num_layers) {
      return absl::InvalidArgumentError(absl::StrCat("layers_per_stage: [",
                                                     absl::StrJoin(sizes, ","), "] sums to ", total,
                                                     "; expected num_layers (", num_layers, ")"));
    }
  }
  std::vector<StageSpec> plan;
  int64_t first = 0;
  for (int64_t s = 0; s < num_stages; ++s) {
    plan.push_back(StageSpec{s, num_stages, first, sizes[s]});
    first += sizes[s];
  }
  return plan;
}

}  // namespace resbm
