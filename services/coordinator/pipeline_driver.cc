#include "services/coordinator/pipeline_driver.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/config/job_config.h"
#include "common/model/grad_clip.h"
#include "common/model/stage_plan.h"
#include "common/schedule/microbatch_deal.h"
#include "common/status/failure_cause.h"
#include "common/status/grpc_status.h"
#include "common/status/non_finite.h"
#include "common/status/status_macros.h"
#include "common/transport/grpc_settings.h"

namespace resbm {

namespace {

// The schedule's C++ op as it travels in a RunStepRequest: the one place the two meet (the
// worker runs the proto ops as they come, StepRun::RunOps).
v1::PipelineOp OpToProto(const PipelineOp& op) {
  v1::PipelineOp out;
  out.set_kind(op.kind == OpKind::kForward ? v1::OP_KIND_FORWARD : v1::OP_KIND_BACKWARD);
  out.set_microbatch(static_cast<uint32_t>(op.microbatch));
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PipelineDriver>> PipelineDriver::Create(
    const std::string& job_id, const v1::JobConfig& config,
    const std::vector<std::string>& worker_addresses) {
  std::vector<StageEndpoint> workers;
  for (const auto& address : worker_addresses) workers.push_back(StageEndpoint{address, ""});
  return Create(job_id, config, workers);
}

absl::StatusOr<std::unique_ptr<PipelineDriver>> PipelineDriver::Create(
    const std::string& job_id, const v1::JobConfig& config,
    const std::vector<StageEndpoint>& workers,
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  const int64_t stages = config.stages().num_stages();
  const int64_t replicas = std::max<uint32_t>(1, config.stages().replicas());
  if (static_cast<int64_t>(workers.size()) != stages * replicas) {
    return absl::InvalidArgumentError(absl::StrCat(
        "workers: ", workers.size(), " addresses; expected one per stage and replica (", stages,
        " x ", replicas, ")"));
  }
  if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
  std::unique_ptr<PipelineDriver> driver(new PipelineDriver(job_id, config, workers, credentials));
  RESBM_RETURN_IF_ERROR(driver->DealToActive());
  return driver;
}

absl::Status PipelineDriver::DealToActive() {
  std::vector<int64_t> live;
  for (int64_t r = 0; r < num_replicas_; ++r) {
    if (dropped_.count(r) == 0) live.push_back(r);
  }
  RESBM_ASSIGN_OR_RETURN(shares_, DealMicrobatches(config_.training().microbatches(), live));
  for (const MicrobatchShare& share : shares_) {
    const int64_t m = static_cast<int64_t>(share.microbatches.size());
    if (train_schedules_.count(m) != 0) continue;
    RESBM_ASSIGN_OR_RETURN(train_schedules_[m],
                           MakePipelineSchedule(ToScheduleKind(config_), num_stages_, m));
  }
  return absl::OkStatus();
}

int64_t PipelineDriver::FirstActive() const {
  int64_t r = 0;
  while (dropped_.count(r) != 0) ++r;
  return r;
}

bool PipelineDriver::CanDrop(const std::set<int64_t>& out) const {
  std::set<int64_t> dropped = dropped_;
  dropped.insert(out.begin(), out.end());
  return OuterPeriod() == 0 && static_cast<int64_t>(dropped.size()) < num_replicas_;
}

absl::Status PipelineDriver::DropPipelines(const std::set<int64_t>& out) {
  if (!CanDrop(out)) {
    return absl::FailedPreconditionError(
        "replicas: no pipeline would be left (or the outer optimizer's, which cannot go on "
        "without one)");
  }
  dropped_.insert(out.begin(), out.end());
  RESBM_RETURN_IF_ERROR(DealToActive());
  RESBM_RETURN_IF_ERROR(ApplyPendingOnLive({}));
  // Every live slot keeps its state; the rings close over the live replicas.
  const std::set<size_t> none;
  return AssignSlots(&none).status();
}

PipelineDriver::PipelineDriver(const std::string& job_id, const v1::JobConfig& config,
                               const std::vector<StageEndpoint>& workers,
                               const std::shared_ptr<grpc::ChannelCredentials>& credentials)
    : job_id_(job_id),
      config_(config),
      token_channel_(ToCompressionOptions(config).token_channel != TokenChannelKind::kNone),
      num_stages_(config.stages().num_stages()),
      num_replicas_(std::max<uint32_t>(1, config.stages().replicas())),
      credentials_(credentials),
      replica_bytes_(static_cast<size_t>(num_stages_), 0) {
  for (const auto& worker : workers) {
    addresses_.push_back(worker.address);
    exchange_addresses_.push_back(worker.exchange_address.empty() ? worker.address
                                                                  : worker.exchange_address);
  }
  // Keepalives: a worker that vanishes without closing its connection (host down, link cut)
  // is noticed within seconds, not at the step deadline.
  stubs_.resize(addresses_.size());
  health_.resize(addresses_.size());
  for (size_t slot = 0; slot < addresses_.size(); ++slot) Connect(slot);
}

void PipelineDriver::Connect(size_t slot) {
  const std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(addresses_[slot], credentials_, PeerChannelArguments());
  stubs_[slot] = v1::StageWorker::NewStub(channel);
  health_[slot] = std::make_unique<grpc::GenericStub>(channel);
}

absl::Status PipelineDriver::Unreachable(const grpc::Status& status, size_t stage,
                                         absl::string_view what) {
  absl::Status failure = OfStage(status, stage, what);
  // Refused connections and hung workers alike: take another worker.
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
      status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
    return failure;
  }
  unreachable_.push_back(addresses_[stage]);
  return WithCause(std::move(failure), FailureCause::kWorkerLost);
}

absl::StatusOr<int64_t> PipelineDriver::Assign() { return AssignSlots(nullptr); }

absl::StatusOr<int64_t> PipelineDriver::Replace(const std::map<size_t, StageEndpoint>& workers) {
  std::set<size_t> replaced;
  for (const auto& [slot, worker] : workers) {
    if (slot >= addresses_.size()) {
      return absl::InvalidArgumentError(absl::StrCat("slot ", slot, " of ", addresses_.size()));
    }
    replaced.insert(slot);
  }
  for (const auto& [slot, worker] : workers) {
    addresses_[slot] = worker.address;
    exchange_addresses_[slot] =
        worker.exchange_address.empty() ? worker.address : worker.exchange_address;
    Connect(slot);
  }
  RESBM_RETURN_IF_ERROR(ApplyPendingOnLive(replaced));
  // A pipeline out of the job whose every slot is given comes back, each slot a new replica.
  for (auto r = dropped_.begin(); r != dropped_.end();) {
    bool whole = true;
    for (int64_t s = 0; s < num_stages_; ++s) whole = whole && replaced.count(Slot(*r, s)) != 0;
    r = whole ? dropped_.erase(r) : std::next(r);
  }
  RESBM_RETURN_IF_ERROR(DealToActive());
  // A stage with no live replica left fails in AssignSlot (nothing to take its state from).
  return AssignSlots(&replaced);
}

absl::Status PipelineDriver::ApplyPendingOnLive(const std::set<size_t>& replaced) {
  // With the outer optimizer an apply may start a synchronisation the lost replica cannot
  // join; those replicas are not exact across a loss anyway (their local steps diverge).
  if (!pending_apply_.has_value() || OuterPeriod() > 0) return absl::OkStatus();
  const v1::ApplyStepRequest apply = *pending_apply_;
  std::vector<v1::ApplyStepResponse> applied(stubs_.size());
  return OnEveryStage("apply before the replacement on", absl::Seconds(60),
                      [&](size_t s, grpc::ClientContext* context, Done done) {
                        if (replaced.count(s) != 0) return done(grpc::Status::OK);
                        stubs_[s]->async()->ApplyStep(context, &apply, &applied[s],
                                                      std::move(done));
                      });
}

std::vector<size_t> PipelineDriver::Unresponsive(absl::Duration timeout) {
  std::vector<grpc::ClientContext> contexts(stubs_.size());
  std::vector<grpc::Status> statuses(stubs_.size());
  std::vector<grpc::ByteBuffer> responses(stubs_.size());
  // An empty HealthCheckRequest (the whole server); a ByteBuffer without a slice is no
  // message at all to gRPC.
  grpc::Slice no_bytes("", 0);
  const grpc::ByteBuffer empty(&no_bytes, 1);
  const auto deadline = absl::ToChronoTime(absl::Now() + timeout);
  for (auto& context : contexts) context.set_deadline(deadline);
  CallEveryStage(
      &contexts,
      [&](size_t slot, grpc::ClientContext* context, Done done) {
        health_[slot]->UnaryCall(context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                                 &empty, &responses[slot], std::move(done));
      },
      FanOutPolicy{/*cancel_on_failure=*/false, /*watch_heartbeats=*/false}, &statuses, nullptr);
  std::vector<size_t> gone;
  for (size_t slot = 0; slot < statuses.size(); ++slot) {
    if (!statuses[slot].ok()) gone.push_back(slot);
  }
  return gone;
}

absl::StatusOr<int64_t> PipelineDriver::AssignSlots(const std::set<size_t>* given) {
  unreachable_.clear();
  RESBM_ASSIGN_OR_RETURN(auto plan, PlanJobStages(config_));
  std::optional<std::set<size_t>> replaced;
  if (given != nullptr) replaced = *given;
  int64_t parameters = 0;
  for (int64_t s = num_stages_ - 1; s >= 0; --s) {
    for (int64_t r = 0; r < num_replicas_; ++r) {
      const size_t slot = Slot(r, s);
      if (!active(slot)) continue;
      std::set<size_t>* fresh = replaced ? &*replaced : nullptr;
      absl::StatusOr<v1::AssignResponse> response = AssignSlot(slot, plan[s], fresh);
      // A worker that restarted at its address lost its stage: a new replica after all.
      if (!response.ok() && fresh != nullptr && fresh->count(slot) == 0 &&
          absl::IsFailedPrecondition(response.status())) {
        fresh->insert(slot);
        response = AssignSlot(slot, plan[s], fresh);
      }
      RESBM_RETURN_IF_ERROR(response.status());
      // Every replica holds the same parameters: the model has one replica's.
      if (r == FirstActive()) parameters += static_cast<int64_t>(response->parameters());
    }
  }
  return parameters;
}

absl::StatusOr<v1::AssignResponse> PipelineDriver::AssignSlot(size_t slot, const StageSpec& spec,
                                                              const std::set<size_t>* replaced) {
  const int64_t s = static_cast<int64_t>(slot) % num_stages_;
  const int64_t r = static_cast<int64_t>(slot) / num_stages_;
  v1::AssignRequest request;
  auto* a = request.mutable_assignment();
  a->set_job_id(job_id_);
  *a->mutable_config() = config_;
  a->set_stage_index(static_cast<uint32_t>(s));
  a->set_num_stages(static_cast<uint32_t>(num_stages_));
  a->set_first_layer(static_cast<uint32_t>(spec.first_layer));
  a->set_num_layers(static_cast<uint32_t>(spec.num_layers));
  if (s + 1 < num_stages_) a->set_downstream_address(exchange_addresses_[Slot(r, s + 1)]);
  if (num_replicas_ > 1) {
    // The ring of the stage's replicas in the job; its index there.
    for (int64_t q = 0; q < num_replicas_; ++q) {
      if (q == r) a->set_replica_index(static_cast<uint32_t>(a->replica_addresses_size()));
      if (active(Slot(q, s))) a->add_replica_addresses(exchange_addresses_[Slot(q, s)]);
    }
  }
  if (replaced != nullptr && replaced->count(slot) == 0) {
    request.set_keep_state(true);
  } else if (replaced != nullptr) {
    // From a live replica of the stage: every replica holds the same state.
    for (int64_t q = 0; q < num_replicas_ && request.state_from().empty(); ++q) {
      if (replaced->count(Slot(q, s)) == 0 && active(Slot(q, s))) {
        request.set_state_from(exchange_addresses_[Slot(q, s)]);
      }
    }
    if (request.state_from().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("stage ", s, ": no live replica to take its state from"));
    }
    // Its state comes from the peer, not from config.init.
    a->mutable_config()->clear_init();
  }
  grpc::ClientContext context;
  // A stage's state can take a while to travel.
  context.set_deadline(absl::ToChronoTime(
      absl::Now() + (request.state_from().empty() ? absl::Seconds(60) : absl::Minutes(10))));
  v1::AssignResponse response;
  grpc::Status status = stubs_[slot]->Assign(&context, request, &response);
  if (!status.ok()) return Unreachable(status, slot, "assign");
  return response;
}

std::vector<v1::RunStepRequest> PipelineDriver::MakeRequests(
    v1::StepMode mode, int64_t step, const std::vector<int64_t>& inputs,
    const std::vector<int64_t>& targets) const {
  const int64_t m = config_.training().microbatches();
  const int64_t seq = config_.model().seq_len();
  const int64_t rows = static_cast<int64_t>(inputs.size()) / seq / m;
  std::vector<v1::RunStepRequest> requests(addresses_.size());
  for (const MicrobatchShare& share : shares_) {
    const int64_t local = static_cast<int64_t>(share.microbatches.size());
    const PipelineSchedule& schedule = mode == v1::STEP_MODE_TRAIN
                                           ? train_schedules_.at(local)
                                           : ForwardOnlySchedule(num_stages_, local);
    for (int64_t s = 0; s < num_stages_; ++s) {
      auto& r = requests[Slot(share.replica, s)];
      r.set_job_id(job_id_);
      r.set_step(static_cast<uint64_t>(step));
      r.set_mode(mode);
      r.set_rows(static_cast<uint32_t>(rows));
      r.set_seq_len(static_cast<uint32_t>(seq));
      r.set_microbatches(static_cast<uint32_t>(local));
      // Synchronous replicas sum into the step's mean; with an outer optimizer each pipeline
      // takes the mean over its own microbatches.
      if (num_replicas_ > 1 && OuterPeriod() == 0)
        r.set_step_microbatches(static_cast<uint32_t>(m));
      for (const PipelineOp& op : schedule.stage_ops[s]) *r.add_ops() = OpToProto(op);
      // The pipeline's local microbatch i is the step's share.microbatches[i].
      auto fill = [&](const std::vector<int64_t>& ids,
                      google::protobuf::RepeatedPtrField<v1::TokenIds>* out) {
        for (const int64_t mb : share.microbatches) {
          auto* batch = out->Add();
          batch->mutable_ids()->Reserve(static_cast<int>(rows * seq));
          for (int64_t i = mb * rows * seq; i < (mb + 1) * rows * seq; ++i) {
            batch->add_ids(static_cast<int32_t>(ids[i]));
          }
        }
      };
      // Stages after the first read the ids too where they have a token channel.
      if (s == 0 || token_channel_) fill(inputs, r.mutable_inputs());
      if (s == num_stages_ - 1) fill(targets, r.mutable_targets());
    }
  }
  return requests;
}

PipelineSchedule PipelineDriver::ForwardOnlySchedule(int64_t stages, int64_t microbatches) {
  // Evaluation is forward-only: every stage runs F0..F(m-1) in order.
  PipelineSchedule schedule;
  schedule.num_stages = stages;
  schedule.num_microbatches = microbatches;
  schedule.stage_ops.resize(stages);
  for (auto& ops : schedule.stage_ops) {
    for (int64_t mb = 0; mb < microbatches; ++mb) ops.push_back(PipelineOp{OpKind::kForward, mb});
  }
  return schedule;
}

double PipelineDriver::MeanLoss(const std::vector<v1::RunStepResponse>& responses) const {
  // In the step's microbatch order (the shares are contiguous and ascending), as one
  // pipeline would add them.
  double loss = 0.0;
  int64_t count = 0;
  for (const MicrobatchShare& share : shares_) {
    for (const auto& report : responses[Slot(share.replica, num_stages_ - 1)].microbatches()) {
      loss += report.loss();
      ++count;
    }
  }
  return loss / static_cast<double>(std::max<int64_t>(1, count));
}

std::string PipelineDriver::SlotName(size_t slot) const {
  const int64_t stage = static_cast<int64_t>(slot) % num_stages_;
  if (num_replicas_ == 1) return absl::StrCat("stage ", stage);
  return absl::StrCat("stage ", stage, " replica ", static_cast<int64_t>(slot) / num_stages_);
}

absl::StatusOr<std::vector<v1::RunStepResponse>> PipelineDriver::RunAll(
    std::vector<v1::RunStepRequest> requests, int64_t* last) {
  // The last training step's optimizer update rides with this step (one round trip a step);
  // a failed step still applied it, and a recovery restores a checkpoint anyway.
  std::optional<v1::ApplyStepRequest> sent = std::move(pending_apply_);
  pending_apply_.reset();
  if (sent.has_value()) {
    for (auto& request : requests) *request.mutable_apply() = *sent;
  }
  // A failed step keeps it pending: a redone step carries it again, and the stages that
  // applied it already skip it.
  absl::Cleanup keep_pending = [&] { pending_apply_ = sent; };
  const size_t stages = requests.size();
  std::vector<v1::RunStepResponse> responses(stages);
  std::vector<grpc::ClientContext> contexts(stages);
  std::vector<grpc::Status> statuses(stages);
  const auto deadline = absl::ToChronoTime(absl::Now() + step_timeout_);
  for (size_t s = 0; s < stages; ++s) contexts[s].set_deadline(deadline);
  const std::optional<size_t> lapsed = CallEveryStage(
      &contexts,
      [&](size_t s, grpc::ClientContext* context, Done done) {
        stubs_[s]->async()->RunStep(context, &requests[s], &responses[s], std::move(done));
      },
      FanOutPolicy{/*cancel_on_failure=*/true, /*watch_heartbeats=*/true}, &statuses, last);
  if (lapsed.has_value()) return Lapsed(*lapsed, "", "during the step");
  // Report the root cause: NaN or Inf found anywhere (the job's policy depends on it, and a
  // neighbour's broken stream may have ended first), else the first stage whose failure is
  // not a cancellation we caused.
  std::optional<size_t> cause;
  for (size_t s = 0; s < stages && !cause; ++s) {
    if (IsNonFiniteError(FromGrpcStatus(statuses[s]))) cause = s;
  }
  for (size_t s = 0; s < stages && !cause; ++s) {
    if (!statuses[s].ok() && statuses[s].error_code() != grpc::StatusCode::CANCELLED) cause = s;
  }
  for (size_t s = 0; s < stages && !cause; ++s) {
    if (!statuses[s].ok()) return FromGrpcStatus(statuses[s]);
  }
  if (cause) return OfStage(statuses[*cause], *cause, "");
  std::move(keep_pending).Cancel();
  for (size_t s = 0; s < stages; ++s) {
    replica_bytes_[s % num_stages_] += static_cast<int64_t>(responses[s].all_reduce_bytes_sent());
  }
  return responses;
}

std::optional<size_t> PipelineDriver::CallEveryStage(std::vector<grpc::ClientContext>* contexts,
                                                     const Start& start, FanOutPolicy policy,
                                                     std::vector<grpc::Status>* statuses,
                                                     int64_t* last) {
  const bool cancel_on_failure = policy.cancel_on_failure;
  const Liveness* liveness = policy.watch_heartbeats && liveness_ ? &liveness_ : nullptr;
  const size_t stages = contexts->size();
  // Shared with the callbacks: the last one may still be unlocking `mu` when this returns.
  struct FanOut {
    absl::Mutex mu;
    absl::CondVar changed;
    size_t done = 0;
    bool failed = false;
  };
  auto fan_out = std::make_shared<FanOut>();
  // Cancels every call but `except`, unlocked: a cancel may run that call's callback here.
  auto cancel_all = [contexts](size_t except) {
    for (size_t t = 0; t < contexts->size(); ++t) {
      if (t != except) (*contexts)[t].TryCancel();
    }
  };
  for (size_t s = 0; s < stages; ++s) {
    if (!policy.every_slot && !active(s)) {  // A pipeline out of the job: no call.
      absl::MutexLock lock(&fan_out->mu);
      ++fan_out->done;
      continue;
    }
    start(s, &(*contexts)[s], [=](grpc::Status status) {
      bool first_failure = false;
      {
        absl::MutexLock lock(&fan_out->mu);
        first_failure = cancel_on_failure && !status.ok() && !fan_out->failed;
        fan_out->failed = fan_out->failed || first_failure;
        (*statuses)[s] = std::move(status);
        if (last != nullptr) *last = static_cast<int64_t>(s);  // Whoever ends last writes last.
      }
      // The others would wait for frames that will never come. Counted done only after: the
      // contexts live until every call is done.
      if (first_failure) cancel_all(s);
      absl::MutexLock lock(&fan_out->mu);
      ++fan_out->done;
      fan_out->changed.Signal();
    });
  }
  std::optional<size_t> lapsed;
  absl::MutexLock lock(&fan_out->mu);
  while (fan_out->done < stages) {
    absl::Time wake = absl::InfiniteFuture();
    size_t first = 0;
    for (size_t s = 0; liveness != nullptr && !lapsed && s < stages; ++s) {
      if (!active(s)) continue;
      const absl::Time lapses = (*liveness)(addresses_[s]);
      if (lapses < wake) {
        wake = lapses;
        first = s;
      }
    }
    if (wake <= absl::Now()) {
      lapsed = first;
      fan_out->mu.Unlock();
      cancel_all(stages);
      fan_out->mu.Lock();
      continue;
    }
    // Woken when a call ends; at the earliest lapse, to look again (a heartbeat moves it).
    fan_out->changed.WaitWithDeadline(&fan_out->mu, wake);
  }
  return lapsed;
}

std::string PipelineDriver::Describe(size_t slot, absl::string_view what) const {
  return absl::StrCat(what, what.empty() ? "" : " ", SlotName(slot), " (", addresses_[slot], ")");
}

absl::Status PipelineDriver::OfStage(const grpc::Status& status, size_t slot,
                                     absl::string_view what) {
  return Annotate(FromGrpcStatus(status), absl::StrCat(Describe(slot, what), ": "));
}

absl::Status PipelineDriver::Lapsed(size_t slot, absl::string_view what, absl::string_view when) {
  unreachable_.push_back(addresses_[slot]);
  return WithCause(
      absl::UnavailableError(absl::StrCat(Describe(slot, what), ": its worker's heartbeat lapsed",
                                          when.empty() ? "" : " ", when)),
      FailureCause::kWorkerLost);
}

absl::StatusOr<PipelineStepResult> PipelineDriver::TrainStep(int64_t step,
                                                             const std::vector<int64_t>& inputs,
                                                             const std::vector<int64_t>& targets) {
  const int64_t expected = int64_t{config_.training().batch_size()} * config_.model().seq_len();
  if (static_cast<int64_t>(inputs.size()) != expected ||
      static_cast<int64_t>(targets.size()) != expected) {
    return absl::InvalidArgumentError(absl::StrCat("batch: ", inputs.size(), " inputs and ",
                                                   targets.size(), " targets; expected ", expected,
                                                   " each"));
  }
  refused_.clear();  // Only this step's refusals count.
  PipelineStepResult result;
  int64_t last_slot = -1;
  RESBM_ASSIGN_OR_RETURN(
      auto responses, RunAll(MakeRequests(v1::STEP_MODE_TRAIN, step, inputs, targets), &last_slot));
  result.waited_on_stage = last_slot < 0 ? -1 : last_slot % num_stages_;
  // Between an outer optimizer's synchronisations replicas differ by design.
  const int64_t period = OuterPeriod();
  if (period == 0 || step % period == 0) RESBM_RETURN_IF_ERROR(CheckReplicasAgree(responses));
  StepStats& stats = result.stats;
  stats.loss = MeanLoss(responses);
  // Applied by every stage with the next RunStep or checkpoint; if a stage
  // never gets it, that call fails and the job restores its last checkpoint.
  v1::ApplyStepRequest apply;
  apply.set_job_id(job_id_);
  apply.set_step(static_cast<uint64_t>(step));
  const double clip = config_.optimizer().grad_clip();
  if (period == 0) {
    // Every replica of a stage holds the same (all-reduced) gradients: one pipeline's count.
    stats.grad_norm = std::sqrt(PipelineSquaredNorm(responses, FirstActive()));
  } else {
    // Each pipeline clips by its own norm; the step reports their root mean square.
    double mean_squared = 0.0;
    for (int64_t r = 0; r < num_replicas_; ++r) {
      const double squared = PipelineSquaredNorm(responses, r);
      mean_squared += squared / static_cast<double>(num_replicas_);
      apply.add_replica_clip_factors(GradClipFactor(std::sqrt(squared), clip));
    }
    stats.grad_norm = std::sqrt(mean_squared);
  }
  stats.clip_factor = GradClipFactor(stats.grad_norm, clip);
  apply.set_clip_factor(stats.clip_factor);
  pending_apply_ = std::move(apply);
  result.stages = std::move(responses);
  return result;
}

std::vector<int64_t> PipelineDriver::TakeReplicaBytes() {
  std::vector<int64_t> taken(static_cast<size_t>(num_stages_), 0);
  taken.swap(replica_bytes_);
  return taken;
}

int64_t PipelineDriver::OuterPeriod() const {
  return num_replicas_ > 1 ? config_.optimizer().outer().steps() : 0;
}

double PipelineDriver::PipelineSquaredNorm(const std::vector<v1::RunStepResponse>& responses,
                                           int64_t replica) const {
  double squared = 0.0;
  for (int64_t s = 0; s < num_stages_; ++s) {
    squared += responses[Slot(replica, s)].grad_squared_norm();
  }
  return squared;
}

absl::Status PipelineDriver::CheckReplicasAgree(const std::vector<v1::RunStepResponse>& responses) {
  refused_.clear();
  if (num_replicas_ == 1) return absl::OkStatus();
  std::string disagreements;
  for (int64_t s = 0; s < num_stages_; ++s) {
    // The state most replicas hold is the stage's; a tie goes to the lowest replica's.
    std::map<uint64_t, int64_t> votes;
    for (int64_t r = 0; r < num_replicas_; ++r) {
      if (active(Slot(r, s))) ++votes[responses[Slot(r, s)].parameter_checksum()];
    }
    uint64_t agreed = responses[Slot(FirstActive(), s)].parameter_checksum();
    for (int64_t r = 0; r < num_replicas_; ++r) {
      const uint64_t checksum = responses[Slot(r, s)].parameter_checksum();
      if (active(Slot(r, s)) && votes[checksum] > votes[agreed]) agreed = checksum;
    }
    for (int64_t r = 0; r < num_replicas_; ++r) {
      if (!active(Slot(r, s))) continue;
      const uint64_t checksum = responses[Slot(r, s)].parameter_checksum();
      if (checksum == agreed) continue;
      refused_.push_back(Slot(r, s));
      absl::StrAppend(&disagreements, disagreements.empty() ? "" : "; ", Describe(Slot(r, s), ""),
                      " holds parameters ", absl::Hex(checksum, absl::kZeroPad16),
                      " where its stage holds ", absl::Hex(agreed, absl::kZeroPad16));
    }
  }
  if (refused_.empty()) return absl::OkStatus();
  // Not applied: the step's gradients, summed with the refused replica's, are dropped.
  return WithCause(absl::DataLossError(absl::StrCat("replicas disagree: ", disagreements)),
                   FailureCause::kWorkerLost);
}

absl::Status PipelineDriver::OnEveryStage(absl::string_view what, absl::Duration timeout,
                                          const Start& start) {
  std::vector<grpc::Status> statuses(stubs_.size());
  std::vector<grpc::ClientContext> contexts(stubs_.size());
  const auto deadline = absl::ToChronoTime(absl::Now() + timeout);
  for (auto& context : contexts) context.set_deadline(deadline);
  const std::optional<size_t> lapsed = CallEveryStage(
      &contexts, start, FanOutPolicy{/*cancel_on_failure=*/false, /*watch_heartbeats=*/true},
      &statuses, nullptr);
  unreachable_.clear();
  if (lapsed.has_value()) return Lapsed(*lapsed, what, "");
  absl::Status first;
  for (size_t s = 0; s < statuses.size(); ++s) {
    if (statuses[s].ok()) continue;
    absl::Status failed = Unreachable(statuses[s], s, what);
    if (first.ok()) first = failed;
  }
  return first;
}

absl::StatusOr<int64_t> PipelineDriver::SaveCheckpoints(int64_t step) {
  std::vector<v1::SaveCheckpointRequest> requests(stubs_.size());
  std::vector<v1::SaveCheckpointResponse> responses(stubs_.size());
  for (auto& request : requests) {
    request.set_job_id(job_id_);
    request.set_step(static_cast<uint64_t>(step));
    // The last step's update first: the checkpoint holds `step` applied steps.
    if (pending_apply_.has_value()) *request.mutable_apply() = *pending_apply_;
  }
  // The first pipeline in the job writes each stage's file; the others, which hold the same state,
  // only apply the pending update.
  v1::ApplyStepRequest apply = pending_apply_.value_or(v1::ApplyStepRequest());
  std::vector<v1::ApplyStepResponse> applied(stubs_.size());
  const bool pending = pending_apply_.has_value();
  pending_apply_.reset();
  RESBM_RETURN_IF_ERROR(OnEveryStage(
      "checkpoint of", absl::Seconds(120), [&](size_t s, grpc::ClientContext* context, Done done) {
        if (static_cast<int64_t>(s) / num_stages_ == FirstActive()) {
          stubs_[s]->async()->SaveCheckpoint(context, &requests[s], &responses[s], std::move(done));
        } else if (pending) {
          stubs_[s]->async()->ApplyStep(context, &apply, &applied[s], std::move(done));
        } else {
          done(grpc::Status::OK);
        }
      }));
  int64_t bytes = 0;
  for (const auto& response : responses) bytes += static_cast<int64_t>(response.bytes());
  return bytes;
}

void PipelineDriver::Release() {
  v1::ReleaseRequest request;
  request.set_job_id(job_id_);
  std::vector<v1::ReleaseResponse> responses(stubs_.size());
  std::vector<grpc::Status> statuses(stubs_.size());
  std::vector<grpc::ClientContext> contexts(stubs_.size());
  for (auto& context : contexts) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  }
  // A lapsed worker cannot be reached (or has dropped the job already): no 5 s wait on it,
  // and no watch of the heartbeats (a skipped worker would cancel the others' releases). A
  // gone worker has nothing to drop: the statuses are not looked at.
  CallEveryStage(
      &contexts,
      [&](size_t s, grpc::ClientContext* context, Done done) {
        if (liveness_ && liveness_(addresses_[s]) <= absl::Now()) {
          done(grpc::Status(grpc::StatusCode::UNAVAILABLE, "heartbeat lapsed"));
          return;
        }
        stubs_[s]->async()->Release(context, &request, &responses[s], std::move(done));
      },
      FanOutPolicy{/*cancel_on_failure=*/false, /*watch_heartbeats=*/false,
                   /*every_slot=*/true},
      &statuses, nullptr);
}

absl::StatusOr<int64_t> PipelineDriver::LoadCheckpoints(int64_t step) {
  pending_apply_.reset();  // The restored state replaces whatever the last step made.
  v1::LoadCheckpointRequest request;
  request.set_job_id(job_id_);
  request.set_step(static_cast<uint64_t>(step));
  std::vector<v1::LoadCheckpointResponse> responses(stubs_.size());
  RESBM_RETURN_IF_ERROR(OnEveryStage(
      "restore", absl::Seconds(120), [&](size_t s, grpc::ClientContext* context, Done done) {
        stubs_[s]->async()->LoadCheckpoint(context, &request, &responses[s], std::move(done));
      }));
  for (size_t s = 0; s < responses.size(); ++s) {
    if (active(s) && responses[s].step() != static_cast<uint64_t>(step)) {
      return absl::DataLossError(absl::StrCat("checkpoint of ", SlotName(s), " after step ", step,
                                              " holds step ", responses[s].step()));
    }
  }
  return step;
}

absl::StatusOr<double> PipelineDriver::Evaluate(int64_t round, const std::vector<int64_t>& inputs,
                                                const std::vector<int64_t>& targets) {
  RESBM_ASSIGN_OR_RETURN(auto responses,
                         RunAll(MakeRequests(v1::STEP_MODE_EVAL, round, inputs, targets)));
  return MeanLoss(responses);
}

}  // namespace resbm
