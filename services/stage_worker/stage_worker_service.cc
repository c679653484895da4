#include "services/stage_worker/stage_worker_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/exception_guard.h"
#include "common/status/failure_cause.h"
#include "common/status/grpc_status.h"
#include "services/stage_worker/exchange_server_reactor.h"

namespace resbm {
namespace {

const absl::Status kStopping =
    WithCause(absl::UnavailableError("worker is shutting down"), FailureCause::kWorkerLost);

// Posts `work` to the executor and finishes `reactor` with its status (INTERNAL if it threw);
// if the executor no longer takes work, finishes at once with UNAVAILABLE.
template <typename Work>
grpc::ServerUnaryReactor* PostUnary(grpc::CallbackServerContext* context, ExecutorThread& executor,
                                    Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const bool posted = executor.Post(
      [reactor, work = std::move(work)]() mutable {
        reactor->Finish(ToGrpcStatus(StatusOrException("stage worker", work)));
      });
  if (!posted) reactor->Finish(ToGrpcStatus(kStopping));
  return reactor;
}

absl::Status NoAssignment() {
  // A worker that restarted lost its stage: the job recovers onto a fresh assignment.
  return WithCause(
      absl::FailedPreconditionError("no stage assigned to this worker; call Assign first"),
      FailureCause::kWorkerLost);
}

}  // namespace

StageWorkerService::StageWorkerService(const StageSessionOptions& options) : options_(options) {}

StageWorkerService::~StageWorkerService() { Stop(); }

void StageWorkerService::Stop() {
  executor_.Post([this] { session_.reset(); });
  executor_.Stop();
}

std::shared_ptr<FrameLink> StageWorkerService::WaitForUpstream(
    absl::Time deadline, const std::function<bool()>& cancelled) {
  absl::MutexLock lock(&mu_);
  while ((upstream_ == nullptr || !upstream_->open()) && absl::Now() < deadline && !cancelled()) {
    upstream_changed_.WaitWithDeadline(&mu_,
                                       std::min(deadline, absl::Now() + absl::Milliseconds(20)));
  }
  return upstream_;
}

grpc::ServerUnaryReactor* StageWorkerService::Assign(grpc::CallbackServerContext* context,
                                                     const v1::AssignRequest* request,
                                                     v1::AssignResponse* response) {
  return PostUnary(context, executor_, [this, request, response]() -> absl::Status {
    session_.reset();  // Ends the old stream to the next stage first.
    auto session = StageSession::Create(request->assignment(), options_);
    if (!session.ok()) return session.status();
    session_ = std::move(*session);
    SetUpstreamBudget(session_->inbox_budget_bytes());
    if (options_.metrics != nullptr) {
      options_.metrics->Assigned(request->assignment().stage_index(),
                                 request->assignment().num_stages());
    }
    response->set_parameters(static_cast<uint64_t>(session_->parameter_count()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StageWorkerService::RunStep(grpc::CallbackServerContext* context,
                                                      const v1::RunStepRequest* request,
                                                      v1::RunStepResponse* response) {
  return PostUnary(context, executor_, [this, context, request, response]() -> absl::Status {
    if (!session_) return NoAssignment();
    // A step without a client deadline still ends: 10 minutes is far past any sane step.
    const absl::Time deadline =
        std::min(absl::FromChrono(context->deadline()), absl::Now() + absl::Minutes(10));
    auto cancelled = [context] { return context->IsCancelled(); };
    std::shared_ptr<FrameLink> upstream;
    if (session_->assignment().stage_index() > 0) upstream = WaitForUpstream(deadline, cancelled);
    auto result = session_->RunStep(*request, upstream, deadline, cancelled);
    if (!result.ok()) return result.status();
    *response = std::move(*result);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StageWorkerService::ApplyStep(grpc::CallbackServerContext* context,
                                                        const v1::ApplyStepRequest* request,
                                                        v1::ApplyStepResponse* response) {
  return PostUnary(context, executor_, [this, request]() -> absl::Status {
    if (!session_) return NoAssignment();
    return session_->ApplyStep(*request);
  });
}

grpc::ServerUnaryReactor* StageWorkerService::SaveCheckpoint(
    grpc::CallbackServerContext* context, const v1::SaveCheckpointRequest* request,
    v1::SaveCheckpointResponse* response) {
  return PostUnary(context, executor_, [this, request, response]() -> absl::Status {
    if (!session_) return NoAssignment();
    auto bytes = session_->SaveCheckpoint(*request);
    if (!bytes.ok()) return bytes.status();
    response->set_bytes(static_cast<uint64_t>(*bytes));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StageWorkerService::LoadCheckpoint(
    grpc::CallbackServerContext* context, const v1::LoadCheckpointRequest* request,
    v1::LoadCheckpointResponse* response) {
  return PostUnary(context, executor_, [this, request, response]() -> absl::Status {
    if (!session_) return NoAssignment();
    auto step = session_->LoadCheckpoint(*request);
    if (!step.ok()) return step.status();
    response->set_step(static_cast<uint64_t>(*step));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StageWorkerService::Release(grpc::CallbackServerContext* context,
                                                      const v1::ReleaseRequest* request,
                                                      v1::ReleaseResponse* response) {
  return PostUnary(context, executor_, [this, request, response]() -> absl::Status {
    if (session_ && session_->assignment().job_id() == request->job_id()) {
      session_.reset();  // Ends the stream to the next stage too.
      response->set_released(true);
      if (options_.metrics != nullptr) options_.metrics->Released();
    }
    return absl::OkStatus();
  });
}

grpc::ServerBidiReactor<v1::TensorFrame, v1::TensorFrame>* StageWorkerService::Exchange(
    grpc::CallbackServerContext* context) {
  // Room for two steps' frames of any schedule; the mailbox refuses more, and its byte budget
  // stops reading before that.
  auto link = std::make_shared<FrameLink>(options_.max_queued_frames, 2 * 4096 + 2);
  std::shared_ptr<FrameLink> previous;
  {
    absl::MutexLock lock(&mu_);
    link->inbox().SetByteBudget(upstream_budget_bytes_);
    previous = std::exchange(upstream_, link);
    upstream_changed_.SignalAll();
  }
  // A new upstream connection (a restarted or reassigned stage) replaces the old one.
  if (previous) previous->Shutdown(absl::UnavailableError("replaced by a new upstream stream"));
  StageMetrics* metrics = options_.metrics;
  return ExchangeServerReactor::Start(std::move(link), [metrics](const std::string& how) {
    if (metrics != nullptr) metrics->ExchangeEnded(how);
  });
}

void StageWorkerService::SetUpstreamBudget(int64_t bytes) {
  std::shared_ptr<FrameLink> upstream;
  {
    absl::MutexLock lock(&mu_);
    upstream_budget_bytes_ = bytes;
    upstream = upstream_;
  }
  // Unlocked: raising the budget may resume a paused read.
  if (upstream) upstream->inbox().SetByteBudget(bytes);
}

}  // namespace resbm
