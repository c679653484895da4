#include "services/stage_worker/coordinator_client.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/time/time.h"
#include "common/status/grpc_status.h"
#include "common/transport/grpc_settings.h"

namespace resbm {

CoordinatorClient::CoordinatorClient(const std::string& coordinator_address,
                                     v1::RegisterWorkerRequest registration,
                                     const std::shared_ptr<grpc::ChannelCredentials>& credentials)
    : stub_(v1::Control::NewStub(
          grpc::CreateCustomChannel(coordinator_address, credentials, PeerChannelArguments()))),
      registration_(std::move(registration)) {
  thread_ = std::thread([this] { Loop(); });
}

CoordinatorClient::~CoordinatorClient() {
  stop_.Notify();
  thread_.join();
}

void CoordinatorClient::Loop() {
  std::string worker_id;
  absl::Duration interval = absl::Seconds(1);
  absl::Duration backoff = absl::Milliseconds(100);
  int failed_attempts = 0;
  while (!stop_.HasBeenNotified()) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    if (worker_id.empty()) {
      v1::RegisterWorkerResponse response;
      grpc::Status status = stub_->RegisterWorker(&context, registration_, &response);
      if (status.ok()) {
        worker_id = response.worker_id();
        interval = absl::Milliseconds(std::max<uint32_t>(50, response.heartbeat_interval_ms()));
        backoff = absl::Milliseconds(100);
        failed_attempts = 0;
        std::printf("resbm-worker: registered as %s\n", worker_id.c_str());
        std::fflush(stdout);
        continue;
      }
      // The coordinator is not up (yet), or refuses us: say so (an operator's first clue to a
      // wrong address or certificate) and retry with capped exponential backoff.
      std::printf("resbm-worker: registration attempt %d failed (%s); retrying in %s\n",
                  ++failed_attempts, FromGrpcStatus(status).ToString().c_str(),
                  absl::FormatDuration(backoff).c_str());
      std::fflush(stdout);
      stop_.WaitForNotificationWithTimeout(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(5));
      continue;
    }
    v1::HeartbeatRequest request;
    request.set_worker_id(worker_id);
    request.set_address(registration_.address());
    v1::HeartbeatResponse response;
    grpc::Status status = stub_->Heartbeat(&context, request, &response);
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) worker_id.clear();
    stop_.WaitForNotificationWithTimeout(interval);
  }
}

}  // namespace resbm
