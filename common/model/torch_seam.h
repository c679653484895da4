// AtTorchSeam: runs a callable that calls into LibTorch and turns any exception it throws into
// an Internal status naming the component and the operation. The model core's public calls
// (StageRunner, WireCodec) go through it, so no exception crosses into service code.
// Header-only; thread-safe (stateless).
#ifndef RESBM_COMMON_MODEL_TORCH_SEAM_H_
#define RESBM_COMMON_MODEL_TORCH_SEAM_H_

#include <c10/util/Exception.h>

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace resbm {

// `fn` returns absl::Status or absl::StatusOr<T>; so does AtTorchSeam.
template <typename Fn>
auto AtTorchSeam(absl::string_view where, absl::string_view op, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(where, " ", op, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(where, " ", op, ": ", e.what()));
  }
}

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_TORCH_SEAM_H_
