// ToGrpcStatus / FromGrpcStatus: the one place where absl::Status and grpc::Status meet. The
// canonical codes are the same numbers in both; an absl::Status's payloads (the FailureCause
// among them) travel as the gRPC binary status details, a resbm.v1.RpcStatus (the wire form of
// google.rpc.Status). Pure functions; thread-safe.
#ifndef RESBM_COMMON_STATUS_GRPC_STATUS_H_
#define RESBM_COMMON_STATUS_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace resbm {

grpc::Status ToGrpcStatus(const absl::Status& status);

// Details that do not parse as an RpcStatus are dropped (the code and message stay).
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace resbm

#endif  // RESBM_COMMON_STATUS_GRPC_STATUS_H_
