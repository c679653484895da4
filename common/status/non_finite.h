// NaN or Inf met in training: one status shape (a marker in the message, which survives the
// trip through gRPC) so that the loop can apply the job's NonFinitePolicy wherever the value
// was found. Header-only.
#ifndef RESBM_COMMON_STATUS_NON_FINITE_H_
#define RESBM_COMMON_STATUS_NON_FINITE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace resbm {

inline constexpr absl::string_view kNonFiniteMarker = "non-finite values";

// DataLoss: "non-finite values: <what>", e.g. "non-finite values: 3 of 4096 in the activation
// of microbatch 1 received from stage 0".
inline absl::Status NonFiniteError(absl::string_view what) {
  return absl::DataLossError(absl::StrCat(kNonFiniteMarker, ": ", what));
}

inline bool IsNonFiniteError(const absl::Status& status) {
  return !status.ok() && absl::StrContains(status.message(), kNonFiniteMarker);
}

}  // namespace resbm

#endif  // RESBM_COMMON_STATUS_NON_FINITE_H_
