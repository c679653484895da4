// FailureCause: why a step failed, carried as a typed payload of the absl::Status (and, through
// ToGrpcStatus / FromGrpcStatus, as the gRPC status details), so the training loop decides
// whether to recover from the cause and never from the message text. A status without a cause
// is judged by its code alone (RecoveryPolicy). Header-only; needs only Abseil (the model core
// sets causes too).
#ifndef RESBM_COMMON_STATUS_FAILURE_CAUSE_H_
#define RESBM_COMMON_STATUS_FAILURE_CAUSE_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"

namespace resbm {

// The same names and numbers as resbm.v1.FailureCause (protos/resbm/v1/status.proto).
enum class FailureCause {
  kUnspecified = 0,
  // NaN or Inf in a loss, gradient norm, activation or gradient: the job's NonFinitePolicy.
  kNonFinite = 1,
  // A worker unreachable, restarted (it lost its stage) or shutting down.
  kWorkerLost = 2,
  // A boundary link broke, or a neighbour sent a frame that does not belong to this step
  // (a stale link after a rebuild).
  kLink = 3,
  // LibTorch raised while computing a stage: recovered once per step, fatal if the same
  // step fails that way again.
  kModelError = 4,
};

// Where the cause rides on an absl::Status, in the form google.rpc.Status details use.
inline constexpr absl::string_view kFailureCauseTypeUrl =
    "type.googleapis.com/resbm.v1.FailureCause";

inline absl::string_view FailureCauseName(FailureCause cause) {
  switch (cause) {
    case FailureCause::kNonFinite:
      return "FAILURE_CAUSE_NON_FINITE";
    case FailureCause::kWorkerLost:
      return "FAILURE_CAUSE_WORKER_LOST";
    case FailureCause::kLink:
      return "FAILURE_CAUSE_LINK";
    case FailureCause::kModelError:
      return "FAILURE_CAUSE_MODEL_ERROR";
    case FailureCause::kUnspecified:
      break;
  }
  return "FAILURE_CAUSE_UNSPECIFIED";
}

// `status` with `cause` attached (replacing any earlier one); OK stays OK.
inline absl::Status WithCause(absl::Status status, FailureCause cause) {
  if (!status.ok()) status.SetPayload(kFailureCauseTypeUrl, absl::Cord(FailureCauseName(cause)));
  return status;
}

// The cause attached to `status`, if any (an unknown name reads as kUnspecified).
inline std::optional<FailureCause> CauseOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kFailureCauseTypeUrl);  // absl::optional here.
  if (!payload.has_value()) return std::nullopt;
  const std::string name(*payload);
  for (FailureCause cause : {FailureCause::kNonFinite, FailureCause::kWorkerLost,
                             FailureCause::kLink, FailureCause::kModelError}) {
    if (name == FailureCauseName(cause)) return cause;
  }
  return FailureCause::kUnspecified;
}

// A new status with `prefix` before the message (e.g. "stage 2 (host:port): "), the same code
// and every payload of `status`, so context added on the way up keeps the cause.
inline absl::Status Annotate(const absl::Status& status, absl::string_view prefix) {
  if (status.ok()) return status;
  absl::Status annotated(status.code(), std::string(prefix) + std::string(status.message()));
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    annotated.SetPayload(type_url, payload);
  });
  return annotated;
}

}  // namespace resbm

#endif  // RESBM_COMMON_STATUS_FAILURE_CAUSE_H_
