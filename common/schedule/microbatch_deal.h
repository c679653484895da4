// DealMicrobatches: which pipeline runs which of a step's microbatches when a stage has
// several replicas. Pure and deterministic: the coordinator, its tests and the simulator
// compute the same deal from the same inputs.
#ifndef RESBM_COMMON_SCHEDULE_MICROBATCH_DEAL_H_
#define RESBM_COMMON_SCHEDULE_MICROBATCH_DEAL_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace resbm {

// One pipeline's share of a step.
struct MicrobatchShare {
  int64_t replica = 0;
  // The step's microbatch ids it runs, ascending; its local microbatch i is microbatches[i].
  std::vector<int64_t> microbatches;
};

// The step's microbatches [0, m) dealt to the `live` pipelines (replica indices, distinct,
// any order): in ascending replica order, each takes a contiguous run, the first m % n one
// more than the rest. Every microbatch goes to exactly one pipeline, so the summed gradients
// are the step's whatever the deal. InvalidArgument for no live pipeline, a repeated or
// negative index, or more pipelines than microbatches (one would idle).
absl::StatusOr<std::vector<MicrobatchShare>> DealMicrobatches(int64_t microbatches,
                                                              absl::Span<const int64_t> live);

}  // namespace resbm

#endif  // RESBM_COMMON_SCHEDULE_MICROBATCH_DEAL_H_
