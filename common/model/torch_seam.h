// AtTorchSeam: runs a callable that calls into LibTorch and turns any exception it throws into
// an Internal status naming the component and the operation, with the kModelError cause. The model
// core's public calls (StageRunner, WireCodec) go through it, so no exception crosses into service
// code. Header-only; thread-safe (stateless).
#ifndef RESBM_COMMON_MODEL_TORCH_SEAM_H_
#define RESBM_COMMON_MODEL_TORCH_SEAM_H_

#include <c10/util/Exception.h>

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status/failure_cause.h"

namespace resbm {

// `fn` returns absl::Status or absl::StatusOr<T>; so does AtTorchSeam.
template <typename Fn>
auto AtTorchSeam(absl::string_view where, absl::string_view op, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    return WithCause(
        absl::InternalError(absl::StrCat(where, " ", op, ": ", e.what_without_backtrace())),
        FailureCause::kModelError);
  } catch (const std::exception& e) {
    return WithCause(absl::InternalError(absl::StrCat(where, " ", op, ": ", e.what())),
                     FailureCause::kModelError);
  }
}

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_TORCH_SEAM_H_
