// RESBM_RETURN_IF_ERROR / RESBM_ASSIGN_OR_RETURN: Debian's Abseil (20220623) ships no status
// macros, so the project keeps these two. Header-only, no dependencies beyond Abseil.
#ifndef RESBM_COMMON_STATUS_STATUS_MACROS_H_
#define RESBM_COMMON_STATUS_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RESBM_STATUS_CONCAT_INNER_(a, b) a##b
#define RESBM_STATUS_CONCAT_(a, b) RESBM_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RESBM_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status resbm_status_ = (expr);         \
    if (!resbm_status_.ok()) return resbm_status_; \
  } while (false)

// `lhs` = value of the StatusOr `rexpr`, or returns its status from the enclosing function.
#define RESBM_ASSIGN_OR_RETURN(lhs, rexpr) \
  RESBM_ASSIGN_OR_RETURN_IMPL_(RESBM_STATUS_CONCAT_(resbm_statusor_, __LINE__), lhs, rexpr)

#define RESBM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // RESBM_COMMON_STATUS_STATUS_MACROS_H_
