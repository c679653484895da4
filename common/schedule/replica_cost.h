// The cost of replicas in a projection: the ring all-reduce of one stage's gradients over R
// replicas on a link of given rate and latency, and the step of R pipelines in which each
// stage starts its all-reduce as soon as its own last op ends. Pure; the simulator
// (resbm-simulate) and the network study use them.
#ifndef RESBM_COMMON_SCHEDULE_REPLICA_COST_H_
#define RESBM_COMMON_SCHEDULE_REPLICA_COST_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/schedule/pipeline_schedule.h"

namespace resbm {

// 2 (R - 1) rounds, each sending `bytes` / R to the next replica, `latency_seconds` each:
// 2 (R - 1) (latency + bytes / (R * bytes_per_second)); 0 for one replica. A rate of 0 is
// unlimited. InvalidArgument for R < 1 or a negative or non-finite input.
absl::StatusOr<double> RingAllReduceSeconds(int64_t replicas, double bytes, double bytes_per_second,
                                            double latency_seconds);

// The step of one of R identical pipelines whose timeline is `timeline`: stage s's
// all-reduce (`all_reduce_seconds[s]`) starts when its last op ends, and the step ends
// when the last one does. InvalidArgument for a vector whose size is not the stages'.
absl::StatusOr<double> StepWithAllReduceSeconds(const ScheduleTimeline& timeline,
                                                const std::vector<double>& all_reduce_seconds);

}  // namespace resbm

#endif  // RESBM_COMMON_SCHEDULE_REPLICA_COST_H_
