#include "common/status/grpc_status.h"

#include <string>

#include "absl/strings/cord.h"
#include "resbm/v1/status.pb.h"

namespace resbm {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  v1::RpcStatus details;
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    v1::StatusPayload* out = details.add_details();
    out->set_type_url(std::string(type_url));
    out->set_value(std::string(payload));
  });
  if (details.details().empty()) return grpc::Status(code, message);
  details.set_code(static_cast<int32_t>(status.code()));
  details.set_message(message);
  return grpc::Status(code, message, details.SerializeAsString());
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status converted(static_cast<absl::StatusCode>(status.error_code()),
                         status.error_message());
  v1::RpcStatus details;
  if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
    for (const v1::StatusPayload& payload : details.details()) {
      converted.SetPayload(payload.type_url(), absl::Cord(payload.value()));
    }
  }
  return converted;
}

}  // namespace resbm
