// ReduceInbox: the all-reduce chunks that arrived from the previous replica of this worker's
// stage, waiting for the step that takes them, keyed by (step, round, piece). The gRPC handler
// delivers without blocking and without the executor (the executor is the one waiting); the
// step takes with its deadline and cancellation token. Chunks of another job or stage are
// refused; at most kMaxHeld pieces wait at once (the ring keeps a sender within two rounds
// of its next replica, so this bounds a hostile sender, not a correct one below 8 GiB a round).
// Thread-safe.
#ifndef RESBM_SERVICES_STAGE_WORKER_REDUCE_INBOX_H_
#define RESBM_SERVICES_STAGE_WORKER_REDUCE_INBOX_H_

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/runtime/cancellation.h"
#include "common/transport/bulk_bytes.h"
#include "resbm/v1/stage_worker.pb.h"

namespace resbm {

class ReduceInbox {
 public:
  static constexpr int64_t kMaxHeld = 4096;

  // From now on, chunks of `job_id`'s stage `stage` sent by replica `from_replica` (the
  // previous one on the ring) are accepted; what was held is dropped. An empty job accepts
  // none.
  void Expect(const std::string& job_id, int64_t stage, int64_t from_replica);
  // The handler's half. FAILED_PRECONDITION for another job or stage, ALREADY_EXISTS for a
  // chunk held already, RESOURCE_EXHAUSTED past kMaxHeld, and a chunk of a step already
  // over is dropped (OK).
  // `chunk` is the request's other fields; `values` its values, as gRPC's slices.
  absl::Status Deliver(const v1::ReduceChunkRequest& chunk, BulkBytes values);
  // Waits for piece `piece` of the chunk of (`step`, `round`) and returns its values (the
  // slices they arrived in, not copied); drops the chunks of earlier steps. DEADLINE_EXCEEDED at
  // `deadline`, the token's reason once it trips.
  absl::StatusOr<BulkBytes> Take(int64_t step, int64_t round, int64_t piece, absl::Time deadline,
                                 const Cancellation* cancel);

 private:
  absl::Mutex mu_;
  absl::CondVar arrived_;
  std::string job_id_ ABSL_GUARDED_BY(mu_);
  int64_t stage_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t from_replica_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t oldest_step_ ABSL_GUARDED_BY(mu_) = 0;  // Chunks of earlier steps are dropped.
  using Key = std::tuple<int64_t, int64_t, int64_t>;  // Step, round, piece.
  std::map<Key, BulkBytes> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_REDUCE_INBOX_H_
