// PlanStages: the pure planner that splits L transformer blocks into P contiguous pipeline
// stages, evenly or from an explicit list, and StageSpec, one stage's slice of the model.
// Pure functions and value types; thread-safe.
#ifndef RESBM_COMMON_MODEL_STAGE_PLAN_H_
#define RESBM_COMMON_MODEL_STAGE_PLAN_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace resbm {

// One stage: blocks [first_layer, first_layer + num_layers) of the model. Stage 0 also owns
// the embedding; the last stage owns the final norm, the LM head and the loss.
struct StageSpec {
  int64_t index = 0;
  int64_t num_stages = 1;
  int64_t first_layer = 0;
  int64_t num_layers = 0;

  bool is_first() const { return index == 0; }
  bool is_last() const { return index == num_stages - 1; }
  bool operator==(const StageSpec& other) const {
    return index == other.index && num_stages == other.num_stages &&
           first_layer == other.first_layer && num_layers == other.num_layers;
  }
};

// Splits `num_layers` blocks into `num_stages` stages. With an empty `layers_per_stage` the
// split is as even as possible, earlier stages taking the remainder (5 blocks over 3 stages
// gives [2,2,1]); otherwise the list is used as given and must have one entry per stage, each
// >= 1, summing to num_layers. Errors name the offending value.
absl::StatusOr<std::vector<StageSpec>> PlanStages(int64_t num_layers, int64_t num_stages,
                                                  const std::vector<int64_t>& layers_per_stage);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_STAGE_PLAN_H_
