#include "services/coordinator/control_service.h"

#include "common/status/grpc_status.h"
#include "common/transport/transport_security.h"

namespace resbm {
namespace {

bool IsHostPort(const std::string& address) {
  const auto colon = address.rfind(':');
  return colon != std::string::npos && colon > 0 && colon + 1 < address.size();
}

}  // namespace

ControlService::ControlService(WorkerRegistry* registry, absl::Duration heartbeat_interval,
                               bool require_certificate)
    : registry_(registry),
      heartbeat_interval_(heartbeat_interval),
      require_certificate_(require_certificate) {}

absl::Status ControlService::CheckPeer(const grpc::CallbackServerContext& context) const {
  if (!require_certificate_ || PeerCertificateVerified(context)) return absl::OkStatus();
  return absl::UnauthenticatedError(
      "client certificate: none; a worker must present one signed by the cluster's CA "
      "(resbm-worker --tls-cert/--tls-key)");
}

grpc::ServerUnaryReactor* ControlService::RegisterWorker(grpc::CallbackServerContext* context,
                                                         const v1::RegisterWorkerRequest* request,
                                                         v1::RegisterWorkerResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (absl::Status peer = CheckPeer(*context); !peer.ok()) {
    reactor->Finish(ToGrpcStatus(peer));
    return reactor;
  }
  if (!IsHostPort(request->address())) {
    reactor->Finish(ToGrpcStatus(
        absl::InvalidArgumentError("address: '" + request->address() + "'; expected host:port")));
    return reactor;
  }
  if (!request->exchange_address().empty() && !IsHostPort(request->exchange_address())) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(
        "exchange_address: '" + request->exchange_address() + "'; expected host:port or empty")));
    return reactor;
  }
  response->set_worker_id(
      registry_->Register(request->address(), request->device(), request->exchange_address()));
  response->set_heartbeat_interval_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(heartbeat_interval_)));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ControlService::Heartbeat(grpc::CallbackServerContext* context,
                                                    const v1::HeartbeatRequest* request,
                                                    v1::HeartbeatResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (absl::Status peer = CheckPeer(*context); !peer.ok()) {
    reactor->Finish(ToGrpcStatus(peer));
    return reactor;
  }
  reactor->Finish(ToGrpcStatus(registry_->Heartbeat(request->worker_id(), request->address())));
  return reactor;
}

}  // namespace resbm
