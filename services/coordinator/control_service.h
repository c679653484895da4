// ControlService: the coordinator's Control gRPC service (callback API): worker
// registration and heartbeats into a WorkerRegistry. Every call finishes at once.
// Thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_CONTROL_SERVICE_H_
#define RESBM_SERVICES_COORDINATOR_CONTROL_SERVICE_H_

#include "resbm/v1/coordinator.grpc.pb.h"
#include "services/coordinator/worker_registry.h"

namespace resbm {

class ControlService final : public v1::Control::CallbackService {
 public:
  // `registry` is not owned and must outlive the service.
  // With `require_certificate`, callers must have presented a certificate that chains to the
  // cluster's CA (UNAUTHENTICATED otherwise).
  ControlService(WorkerRegistry* registry, absl::Duration heartbeat_interval,
                 bool require_certificate = false);

  grpc::ServerUnaryReactor* RegisterWorker(grpc::CallbackServerContext* context,
                                           const v1::RegisterWorkerRequest* request,
                                           v1::RegisterWorkerResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;

 private:
  absl::Status CheckPeer(const grpc::CallbackServerContext& context) const;

  WorkerRegistry* registry_;
  absl::Duration heartbeat_interval_;
  bool require_certificate_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_CONTROL_SERVICE_H_
