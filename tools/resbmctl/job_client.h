// JobClient: a blocking client of the coordinator's JobService for resbmctl and the tests:
// one channel (keepalive on), a deadline on every unary call, and WatchJob as a callback
// per event. Errors come back as absl::Status with the server's message. Thread-compatible.
#ifndef RESBM_TOOLS_RESBMCTL_JOB_CLIENT_H_
#define RESBM_TOOLS_RESBMCTL_JOB_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "resbm/v1/job_service.grpc.pb.h"

namespace resbm {

// How a client reaches the job API: the channel's credentials (TLS, or plaintext) and the
// bearer token sent with every call.
struct JobClientAuth {
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // Null: plaintext.
  std::string token;                                      // Empty: none sent.
};

class JobClient {
 public:
  // `address` is host:port of the coordinator.
  explicit JobClient(const std::string& address, absl::Duration deadline = absl::Seconds(15),
                     JobClientAuth auth = {});

  // `priority`: higher starts first among queued jobs.
  absl::StatusOr<v1::Job> Submit(const v1::JobConfig& config, int32_t priority = 0);
  absl::StatusOr<v1::Job> Get(const std::string& job_id);
  absl::StatusOr<std::vector<v1::Job>> List();
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id);
  absl::StatusOr<v1::ClusterStatus> ClusterStatus();
  // Streams the job's events to `on_event` until the job ends; returns the job as it ended.
  // `stop` is polled every 100 ms: true cancels the watch (CANCELLED).
  absl::StatusOr<v1::Job> Watch(const std::string& job_id,
                                const std::function<void(const v1::JobEvent&)>& on_event,
                                const std::function<bool()>& stop = nullptr);
  // Streams an ended job's exported model into `out_dir` (created): each file is written
  // beside its final name and renamed into place only when complete, with the size and
  // offsets the coordinator announced. Returns what the export holds.
  absl::StatusOr<v1::ExportInfo> ExportModel(const std::string& job_id, const std::string& out_dir);
  // Polls until the job ends or `timeout` passes (DEADLINE_EXCEEDED).
  absl::StatusOr<v1::Job> WaitForEnd(const std::string& job_id, absl::Duration timeout);

  const std::string& address() const { return address_; }

 private:
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(grpc::Status (v1::JobService::Stub::*method)(grpc::ClientContext*,
                                                                             const Request&,
                                                                             Response*),
                                const Request& request);

  // A context with the deadline (when given) and the token.
  void Prepare(grpc::ClientContext* context, bool with_deadline) const;

  std::string address_;
  absl::Duration deadline_;
  std::string token_;
  std::unique_ptr<v1::JobService::Stub> stub_;
};

// Whether the job is SUCCEEDED, FAILED or CANCELLED.
bool JobEnded(const v1::Job& job);

}  // namespace resbm

#endif  // RESBM_TOOLS_RESBMCTL_JOB_CLIENT_H_
