#include "common/train/recovery_policy.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace resbm {

FailureClass ClassifyFailure(const absl::Status& failure) {
  switch (CauseOf(failure).value_or(FailureCause::kUnspecified)) {
    case FailureCause::kNonFinite:
      return FailureClass::kNonFinite;
    case FailureCause::kWorkerLost:
    case FailureCause::kLink:
      return FailureClass::kTransient;
    case FailureCause::kModelError:
      return FailureClass::kOncePerStep;
    case FailureCause::kUnspecified:
      break;
  }
  switch (failure.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnknown:
      return FailureClass::kTransient;
    case absl::StatusCode::kInternal:
      return FailureClass::kOncePerStep;
    default:
      return FailureClass::kDeterministic;
  }
}

absl::Status RecoveryPolicy::Admit(const absl::Status& failure, int64_t step) const {
  const std::string at = absl::StrCat("step ", step, ": ");
  switch (ClassifyFailure(failure)) {
    case FailureClass::kDeterministic:
      return Annotate(failure,
                      absl::StrCat(at, "not recovered (", absl::StatusCodeToString(failure.code()),
                                   " is deterministic: a retry fails the same way): "));
    case FailureClass::kNonFinite:
      if (!options_.retry_non_finite) return failure;  // Its message says what and where.
      break;
    case FailureClass::kOncePerStep:
      if (once_failed_step_ == step) {
        return Annotate(failure, absl::StrCat(at,
                                              "not recovered (the same step failed this way before "
                                              "recovering, so it repeats on this batch): "));
      }
      break;
    case FailureClass::kTransient:
      break;
  }
  if (without_progress_ >= options_.max_without_progress && step == redone_step_) {
    return Annotate(failure, absl::StrCat(at, "gave up after redoing this step ", without_progress_,
                                          " times, the limit "
                                          "training.max_recoveries_without_progress = ",
                                          options_.max_without_progress,
                                          "; earlier causes: ", RecentCauses(), "; this one: "));
  }
  if (without_progress_ >= options_.max_without_progress) {
    return Annotate(
        failure,
        absl::StrCat(
            at, "gave up after ", without_progress_, " recoveries since the last new ",
            best_checkpoint_ < 0 ? std::string("checkpoint (none yet)")
                                 : absl::StrCat("checkpoint (after step ", best_checkpoint_, ")"),
            ", the limit training.max_recoveries_without_progress = ",
            options_.max_without_progress, "; earlier causes: ", RecentCauses(), "; this one: "));
  }
  return absl::OkStatus();
}

const RecoveryEvent& RecoveryPolicy::Recovered(const absl::Status& failure, int64_t step,
                                               int64_t resumed_after) {
  if (resumed_after == step - 1 && resumed_after > best_checkpoint_) {
    // Redone in place (a replica replaced): every completed step was kept, so this is
    // progress unless it is the same step again.
    without_progress_ = step == redone_step_ ? without_progress_ + 1 : 1;
    redone_step_ = step;
  } else {
    ++without_progress_;
  }
  if (ClassifyFailure(failure) == FailureClass::kOncePerStep) once_failed_step_ = step;
  recent_.push_back(RecoveryEvent{failure, step, resumed_after, without_progress_});
  if (recent_.size() > kRecentLimit) recent_.pop_front();
  return recent_.back();
}

bool RecoveryPolicy::CheckpointCompleted(int64_t steps_done) {
  if (steps_done <= best_checkpoint_) return false;
  best_checkpoint_ = steps_done;
  without_progress_ = 0;
  return true;
}

std::string RecoveryPolicy::RecentCauses() const {
  std::vector<std::string> causes;
  for (const RecoveryEvent& event : recent_) {
    const std::optional<FailureCause> cause = CauseOf(event.failure);
    causes.push_back(absl::StrCat("step ", event.failed_step, " ",
                                  absl::StatusCodeToString(event.failure.code()),
                                  cause ? absl::StrCat(" (", FailureCauseName(*cause), ")") : "",
                                  ": ", event.failure.message()));
  }
  return causes.empty() ? "none" : absl::StrJoin(causes, "; ");
}

}  // namespace resbm
