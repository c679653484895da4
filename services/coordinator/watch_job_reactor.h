// WatchJobReactor: one JobService.WatchJob stream. Sends the job as it is, then every event
// the JobManager publishes for it, one write in flight; finishes OK after the event that ends
// the job. A watcher that falls behind loses intermediate STEP events (each carries the whole
// progress, so the next one supersedes them), never a state change. Deletes itself in OnDone.
#ifndef RESBM_SERVICES_COORDINATOR_WATCH_JOB_REACTOR_H_
#define RESBM_SERVICES_COORDINATOR_WATCH_JOB_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>

#include "absl/synchronization/mutex.h"
#include "resbm/v1/job_service.grpc.pb.h"
#include "services/coordinator/job_manager.h"

namespace resbm {

class WatchJobReactor final : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  // Starts the stream; `manager` must outlive it.
  static WatchJobReactor* Start(JobManager* manager, const std::string& job_id);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  explicit WatchJobReactor(JobManager* manager);
  // Listener side: queues `event`, starting a write when none is in flight.
  void Enqueue(v1::JobEvent event);
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  static constexpr size_t kMaxQueued = 64;

  JobManager* manager_;
  int64_t handle_ = 0;
  absl::Mutex mu_;
  std::deque<v1::JobEvent> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  v1::JobEvent in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_WATCH_JOB_REACTOR_H_
