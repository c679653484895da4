// StatusOrException: runs a callable returning absl::Status and turns an exception that
// escapes it into INTERNAL, so one bad request fails with a status instead of ending the
// process (a worker's executor thread runs every RPC's work through it). LibTorch calls have
// their own seam (common/model/torch_seam.h); this is the last line behind it. Header-only.
#ifndef RESBM_COMMON_STATUS_EXCEPTION_GUARD_H_
#define RESBM_COMMON_STATUS_EXCEPTION_GUARD_H_

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace resbm {

template <typename Fn>
absl::Status StatusOrException(absl::string_view what, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": uncaught exception: ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(what, ": uncaught exception of unknown type"));
  }
}

}  // namespace resbm

#endif  // RESBM_COMMON_STATUS_EXCEPTION_GUARD_H_
