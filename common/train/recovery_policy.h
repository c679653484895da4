// RecoveryPolicy: whether a training run recovers from a failed step (goes back to its last
// complete checkpoint and replays) or fails, judged by the failure's cause, then its code,
// and limited by progress: at most N recoveries since the last newly completed checkpoint,
// however many the run needed before it. Pure bookkeeping, no I/O; not thread-safe.
//
//   cause (FailureCause payload)  | code, where there is no cause      | decision
//   worker lost, link             | UNAVAILABLE, DEADLINE_EXCEEDED,     | recover
//                                 | ABORTED, CANCELLED, RESOURCE_       |
//                                 | EXHAUSTED, DATA_LOSS, UNKNOWN       |
//   model error                   | INTERNAL                            | recover once; the
//                                 |                                     | same step again fails
//   non-finite                    |                                     | the NonFinitePolicy
//                                 | any other (INVALID_ARGUMENT,        | fail at once
//                                 | FAILED_PRECONDITION, OUT_OF_RANGE,  |
//                                 | NOT_FOUND, PERMISSION_DENIED, ...)  |
#ifndef RESBM_COMMON_TRAIN_RECOVERY_POLICY_H_
#define RESBM_COMMON_TRAIN_RECOVERY_POLICY_H_

#include <cstdint>
#include <deque>
#include <string>

#include "absl/status/status.h"
#include "common/status/failure_cause.h"

namespace resbm {

enum class FailureClass {
  kTransient,      // Recover, within the limit.
  kOncePerStep,    // Recover once; a second failure of the same step is deterministic.
  kNonFinite,      // The job's NonFinitePolicy decides.
  kDeterministic,  // Fail at once: the same input would fail the same way.
};

FailureClass ClassifyFailure(const absl::Status& failure);

// One recovery, as the policy remembers the last few.
struct RecoveryEvent {
  absl::Status failure;
  int64_t failed_step = 0;       // 1-based: the step that was being computed.
  int64_t resumed_after = 0;     // The checkpoint the run went back to.
  // Recoveries since the last new checkpoint, this one included; for a step redone in place
  // (no completed step lost), the times this step was redone.
  int64_t without_progress = 0;
};

struct RecoveryPolicyOptions {
  // training.max_recoveries_without_progress.
  int64_t max_without_progress = 5;
  // NON_FINITE_POLICY_RETRY_FROM_CHECKPOINT: NaN and Inf recover like transient faults.
  bool retry_non_finite = false;
};

class RecoveryPolicy {
 public:
  static constexpr size_t kRecentLimit = 8;

  explicit RecoveryPolicy(const RecoveryPolicyOptions& options) : options_(options) {}

  // OK when the run may recover from `failure` of 1-based step `step`; otherwise the status it
  // fails with: the failure's code and payloads, its message prefixed with the rule that
  // ended the run and, for the limit, the last causes.
  absl::Status Admit(const absl::Status& failure, int64_t step) const;

  // The run recovered (after Admit said it may): it resumes after `resumed_after` steps.
  const RecoveryEvent& Recovered(const absl::Status& failure, int64_t step, int64_t resumed_after);

  // A checkpoint after `steps_done` steps is complete; one past every earlier checkpoint is
  // progress and resets the count. Returns whether it did.
  bool CheckpointCompleted(int64_t steps_done);

  int64_t without_progress() const { return without_progress_; }
  // The last kRecentLimit recoveries, oldest first.
  const std::deque<RecoveryEvent>& recent() const { return recent_; }

 private:
  // "step 12: UNAVAILABLE (FAILURE_CAUSE_WORKER_LOST): stage 1 ...; step 14: ..."
  std::string RecentCauses() const;

  RecoveryPolicyOptions options_;
  int64_t without_progress_ = 0;
  int64_t best_checkpoint_ = -1;
  // The last step redone in place (resumed right before it, past every checkpoint).
  int64_t redone_step_ = -1;
  // The step whose failure was a model error, to catch the same step failing that way again.
  int64_t once_failed_step_ = -1;
  std::deque<RecoveryEvent> recent_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRAIN_RECOVERY_POLICY_H_
