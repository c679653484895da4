// ToGrpcStatus / FromGrpcStatus: the one place where absl::Status and grpc::Status meet.
// The canonical codes are the same numbers in both. Pure functions; thread-safe.
#ifndef RESBM_COMMON_STATUS_GRPC_STATUS_H_
#define RESBM_COMMON_STATUS_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace resbm {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

inline absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace resbm

#endif  // RESBM_COMMON_STATUS_GRPC_STATUS_H_
