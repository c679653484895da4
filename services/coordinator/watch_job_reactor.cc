#include "services/coordinator/watch_job_reactor.h"

#include <utility>

#include "common/status/grpc_status.h"

namespace resbm {
namespace {

bool Ends(const v1::JobEvent& event) {
  const v1::JobState state = event.job().state();
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

}  // namespace

WatchJobReactor* WatchJobReactor::Start(JobManager* manager, const std::string& job_id) {
  auto* reactor = new WatchJobReactor(manager);  // Freed in OnDone.
  auto handle =
      manager->Subscribe(job_id, [reactor](const v1::JobEvent& event) { reactor->Enqueue(event); });
  if (!handle.ok()) {
    {
      absl::MutexLock lock(&reactor->mu_);
      reactor->finishing_ = true;
    }
    reactor->Finish(ToGrpcStatus(handle.status()));
    return reactor;
  }
  reactor->handle_ = *handle;
  return reactor;
}

WatchJobReactor::WatchJobReactor(JobManager* manager) : manager_(manager) {}

void WatchJobReactor::Enqueue(v1::JobEvent event) {
  absl::MutexLock lock(&mu_);
  if (finishing_) return;
  if (queue_.size() >= kMaxQueued && event.kind() == v1::JOB_EVENT_KIND_STEP) return;
  queue_.push_back(std::move(event));
  if (!writing_) WriteNextLocked();
}

void WatchJobReactor::WriteNextLocked() {
  if (queue_.empty()) {
    writing_ = false;
    return;
  }
  in_flight_ = std::move(queue_.front());
  queue_.pop_front();
  writing_ = true;
  StartWrite(&in_flight_);
}

void WatchJobReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  if (finishing_) return;
  if (!ok) {
    finishing_ = true;  // The client went away.
    Finish(grpc::Status::CANCELLED);
    return;
  }
  if (Ends(in_flight_)) {
    finishing_ = true;
    Finish(grpc::Status::OK);
    return;
  }
  WriteNextLocked();
}

void WatchJobReactor::OnCancel() {
  absl::MutexLock lock(&mu_);
  if (finishing_) return;
  finishing_ = true;
  Finish(grpc::Status::CANCELLED);
}

void WatchJobReactor::OnDone() {
  // No listener call can be running or start after this returns.
  if (handle_ != 0) manager_->Unsubscribe(handle_);
  delete this;
}

}  // namespace resbm
