// NaN or Inf met in training: one status shape (DataLoss with the kNonFinite cause, which
// survives the trip through gRPC as a status detail) so that the loop can apply the job's
// NonFinitePolicy wherever the value was found. Header-only.
#ifndef RESBM_COMMON_STATUS_NON_FINITE_H_
#define RESBM_COMMON_STATUS_NON_FINITE_H_

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status/failure_cause.h"

namespace resbm {

// DataLoss: "non-finite values: <what>", e.g. "non-finite values: 3 of 4096 in the activation
// of microbatch 1 received from stage 0".
inline absl::Status NonFiniteError(absl::string_view what) {
  return WithCause(absl::DataLossError(absl::StrCat("non-finite values: ", what)),
                   FailureCause::kNonFinite);
}

inline bool IsNonFiniteError(const absl::Status& status) {
  return !status.ok() && CauseOf(status) == FailureCause::kNonFinite;
}

}  // namespace resbm

#endif  // RESBM_COMMON_STATUS_NON_FINITE_H_
