// CoordinatorClient: the worker's side of the Control service: registers the worker's
// address with the coordinator (retrying with backoff until it answers), then heartbeats;
// registers again when the coordinator no longer knows it (a coordinator restart). Owns one
// background thread. Thread-safe.
#ifndef RESBM_SERVICES_STAGE_WORKER_COORDINATOR_CLIENT_H_
#define RESBM_SERVICES_STAGE_WORKER_COORDINATOR_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "resbm/v1/coordinator.grpc.pb.h"

namespace resbm {

class CoordinatorClient {
 public:
  // `registration` is sent as is (again whenever the coordinator no longer knows the worker).
  CoordinatorClient(const std::string& coordinator_address, v1::RegisterWorkerRequest registration,
                    const std::shared_ptr<grpc::ChannelCredentials>& credentials);
  ~CoordinatorClient();  // Stops the thread.
  CoordinatorClient(const CoordinatorClient&) = delete;
  CoordinatorClient& operator=(const CoordinatorClient&) = delete;

 private:
  void Loop();

  std::unique_ptr<v1::Control::Stub> stub_;
  v1::RegisterWorkerRequest registration_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_COORDINATOR_CLIENT_H_
