// BoundaryTraffic: what crossed one pipeline boundary during a run. The one record of it: a
// backend counts it (TrainingBackend::Traffic), the run's summary reports it (BoundarySummary).
#ifndef RESBM_COMMON_TRAIN_BOUNDARY_TRAFFIC_H_
#define RESBM_COMMON_TRAIN_BOUNDARY_TRAFFIC_H_

#include <cstdint>

namespace resbm {

// Payload bytes that crossed one boundary (z forward, g_z backward) and the tokens they carried.
struct BoundaryTraffic {
  int64_t forward_bytes = 0;
  int64_t backward_bytes = 0;
  int64_t forward_tokens = 0;
  int64_t backward_tokens = 0;
  // Framing beyond the payloads (both directions); 0 where nothing is framed (one process).
  int64_t framing_overhead_bytes = 0;
  // Token ids sent to stage b + 1's token channel by the coordinator, not over the boundary:
  // counted apart (0 without a token channel).
  int64_t token_id_bytes = 0;
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRAIN_BOUNDARY_TRAFFIC_H_
