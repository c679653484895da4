#include "services/stage_worker/stage_worker_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/exception_guard.h"
#include "common/status/failure_cause.h"
#include "common/status/grpc_status.h"
#include "common/status/status_macros.h"
#include "services/stage_worker/exchange_server_reactor.h"
#include "services/stage_worker/reduce_peer_service.h"

namespace resbm {
namespace {

const absl::Status kStopping =
    WithCause(absl::UnavailableError("worker is shutting down"), FailureCause::kWorkerLost);

// Posts `work` to the executor and finishes `reactor` with its status (INTERNAL if it threw);
// if the executor no longer takes work, finishes at once with UNAVAILABLE.
template <typename Work>
grpc::ServerUnaryReactor* PostUnary(grpc::ServerUnaryReactor* reactor, ExecutorThread& executor,
                                    Work work) {
  const bool posted = executor.Post(
      [reactor, work = std::move(work)]() mutable {
        reactor->Finish(ToGrpcStatus(StatusOrException("stage worker", work)));
      });
  if (!posted) reactor->Finish(ToGrpcStatus(kStopping));
  return reactor;
}

template <typename Work>
grpc::ServerUnaryReactor* PostUnary(grpc::CallbackServerContext* context, ExecutorThread& executor,
                                    Work work) {
  return PostUnary(context->DefaultReactor(), executor, std::move(work));
}

// RunStep's reactor: the call's cancellation (by the coordinator, its deadline, a lost
// connection) trips the step's token, which ends every wait of the step at once.
class RunStepReactor final : public grpc::ServerUnaryReactor {
 public:
  RunStepReactor() : cancel_(std::make_shared<Cancellation>()) {}
  const std::shared_ptr<Cancellation>& cancel() const { return cancel_; }

  void OnCancel() override {
    cancel_->Cancel(absl::CancelledError(
        "the RunStep call was cancelled (by the coordinator, its deadline or a lost connection)"));
  }
  void OnDone() override { delete this; }

 private:
  const std::shared_ptr<Cancellation> cancel_;
};

absl::Status NoAssignment() {
  // A worker that restarted lost its stage: the job recovers onto a fresh assignment.
  return WithCause(
      absl::FailedPreconditionError("no stage assigned to this worker; call Assign first"),
      FailureCause::kWorkerLost);
}

StageSessionOptions WithReduceInbox(StageSessionOptions options) {
  options.reduce_inbox = std::make_shared<ReduceInbox>();
  return options;
}

}  // namespace

StageWorkerService::StageWorkerService(const StageSessionOptions& options)
    : options_(WithReduceInbox(options)) {}

StageWorkerService::~StageWorkerService() { Stop(); }

void StageWorkerService::Stop() {
  CancelRunningStep(nullptr, kStopping);
  executor_.Post([this] { session_.reset(); });
  executor_.Stop();
}

std::shared_ptr<FrameLink> StageWorkerService::WaitForUpstream(absl::Time deadline,
                                                               const Cancellation& cancel) {
  const Cancellation::Subscription woken = Cancellation::Subscribe(&cancel, [this] {
    absl::MutexLock lock(&mu_);
    upstream_changed_.SignalAll();
  });
  absl::MutexLock lock(&mu_);
  while ((upstream_ == nullptr || !upstream_->open()) && !cancel.cancelled()) {
    // Woken by a new Exchange stream and by the token.
    if (upstream_changed_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return upstream_;
}

void StageWorkerService::CancelRunningStep(const std::string* job_id, const absl::Status& why) {
  std::shared_ptr<Cancellation> running;
  {
    absl::MutexLock lock(&mu_);
    if (job_id == nullptr || *job_id == running_job_) running = running_step_;
  }
  // Unlocked: WaitForUpstream's wake-up takes mu_.
  if (running) running->Cancel(why);
}

StageWorkerService::RunningStep::RunningStep(StageWorkerService* service,
                                             std::shared_ptr<Cancellation> cancel,
                                             const std::string& job_id)
    : service_(service) {
  absl::MutexLock lock(&service_->mu_);
  service_->running_step_ = std::move(cancel);
  service_->running_job_ = job_id;
}

StageWorkerService::RunningStep::~RunningStep() {
  absl::MutexLock lock(&service_->mu_);
  service_->running_step_.reset();
  service_->running_job_.clear();
}

grpc::ServerUnaryReactor* StageWorkerService::Assign(grpc::CallbackServerContext* context,
                                                     const v1::AssignRequest* request,
                                                     v1::AssignResponse* response) {
  // A step still waiting for frames of the old assignment would hold the executor until its
  // deadline: the new assignment ends it first.
  CancelRunningStep(nullptr,
                    absl::CancelledError("a new assignment arrived: this step's stage is gone"));
  return PostUnary(context, executor_, [this, request, response]() -> absl::Status {
    if (request->keep_state()) {
      if (!session_) return NoAssignment();
      // The previous stage reconnects after this (stages are rewired last first): the next
      // step must wait for that new stream, not take the old one with the failed step's
      // frames still arriving.
      DropUpstream();
      RESBM_RETURN_IF_ERROR(session_->Rewire(request->assignment()));
      SetUpstreamBudget(session_->inbox_budget_bytes());
      response->set_parameters(static_cast<uint64_t>(session_->parameter_count()));
      return absl::OkStatus();
    }
    session_.reset();  // Ends the old stream to the next stage first.
    auto session = StageSession::Create(request->assignment(), options_);
    if (!session.ok()) return session.status();
    if (!request->state_from().empty()) {
      RESBM_RETURN_IF_ERROR((*session)->AdoptStateFrom(request->state_from()));
    }
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
  auto* reactor = new RunStepReactor();
  return PostUnary(
      reactor, executor_,
      [this, context, request, response, cancel = reactor->cancel()]() -> absl::Status {
        if (!session_) return NoAssignment();
        // A step without a client deadline still ends: 10 minutes is far past any
        // sane step.
        const absl::Time deadline =
            std::min(absl::FromChrono(context->deadline()), absl::Now() + absl::Minutes(10));
        const RunningStep running(this, cancel, session_->assignment().job_id());
        std::shared_ptr<FrameLink> upstream;
        if (session_->assignment().stage_index() > 0) {
          upstream = WaitForUpstream(deadline, *cancel);
        }
        auto result = session_->RunStep(*request, upstream, deadline, cancel);
        if (!result.ok()) return result.status();
        *response = std::move(*result);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* StageWorkerService::ApplyStep(grpc::CallbackServerContext* context,
                                                        const v1::ApplyStepRequest* request,
                                                        v1::ApplyStepResponse* response) {
  return PostUnary(context, executor_, [this, context, request]() -> absl::Status {
    if (!session_) return NoAssignment();
    return session_->ApplyStep(*request, absl::FromChrono(context->deadline()), nullptr);
  });
}

grpc::ServerUnaryReactor* StageWorkerService::SaveCheckpoint(
    grpc::CallbackServerContext* context, const v1::SaveCheckpointRequest* request,
    v1::SaveCheckpointResponse* response) {
  return PostUnary(context, executor_, [this, context, request, response]() -> absl::Status {
    if (!session_) return NoAssignment();
    auto bytes = session_->SaveCheckpoint(*request, absl::FromChrono(context->deadline()));
    if (!bytes.ok()) return bytes.status();
    response->set_bytes(static_cast<uint64_t>(*bytes));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StageWorkerService::LoadCheckpoint(
    grpc::CallbackServerContext* context, const v1::LoadCheckpointRequest* request,
    v1::LoadCheckpointResponse* response) {
  // A restore voids the step in progress (a recovery): it must not wait for that step.
  CancelRunningStep(&request->job_id(),
                    absl::CancelledError("a checkpoint restore superseded this step"));
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
  CancelRunningStep(&request->job_id(), absl::CancelledError("the job released this worker"));
  return PostUnary(context, executor_, [this, request, response]() -> absl::Status {
    if (session_ && session_->assignment().job_id() == request->job_id()) {
      session_.reset();  // Ends the stream to the next stage too.
      options_.reduce_inbox->Expect("", -1, -1);
      response->set_released(true);
      if (options_.metrics != nullptr) options_.metrics->Released();
    }
    return absl::OkStatus();
  });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StageWorkerService::Exchange(
    grpc::CallbackServerContext* context) {
  // Room for two steps' frames of any schedule; the mailbox refuses more, and its byte budget
  // stops reading before that.
  auto link = std::make_shared<FrameLink>(options_.max_queued_frames, 2 * 4096 + 2);
  int64_t budget = 0;
  {
    absl::MutexLock lock(&mu_);
    budget = upstream_budget_bytes_;
  }
  link->inbox().SetByteBudget(budget);
  StageMetrics* metrics = options_.metrics;
  // Attached (open) before it is published: a step waiting in WaitForUpstream is woken once,
  // here, and must find the link open then.
  auto* reactor = ExchangeServerReactor::Start(link, [metrics](const std::string& how) {
    if (metrics != nullptr) metrics->ExchangeEnded(how);
  });
  std::shared_ptr<FrameLink> previous;
  bool budget_changed = false;
  {
    absl::MutexLock lock(&mu_);
    previous = std::exchange(upstream_, link);
    budget_changed = upstream_budget_bytes_ != budget;
    budget = upstream_budget_bytes_;
    upstream_changed_.SignalAll();
  }
  // Unlocked, as in SetUpstreamBudget: a budget set in between reaches this link too.
  if (budget_changed) link->inbox().SetByteBudget(budget);
  // A new upstream connection (a restarted or reassigned stage) replaces the old one.
  if (previous) previous->Shutdown(absl::UnavailableError("replaced by a new upstream stream"));
  return reactor;
}

grpc::ServerUnaryReactor* StageWorkerService::FetchState(grpc::CallbackServerContext* context,
                                                         const v1::FetchStateRequest* request,
                                                         v1::FetchStateResponse* response) {
  return PostUnary(context, executor_, [this, request, response]() -> absl::Status {
    if (!session_) return NoAssignment();
    RESBM_ASSIGN_OR_RETURN(*response, session_->FetchState(*request));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* StageWorkerService::ReduceChunk(grpc::CallbackServerContext* context,
                                                          const grpc::ByteBuffer* request,
                                                          grpc::ByteBuffer* response) {
  return ServeReduceChunk(context, request, response, options_.reduce_inbox.get());
}

void StageWorkerService::DropUpstream() {
  std::shared_ptr<FrameLink> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped = std::exchange(upstream_, nullptr);
  }
  if (dropped) dropped->Shutdown(absl::UnavailableError("the stage was rewired"));
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
