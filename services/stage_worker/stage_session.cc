#include "services/stage_worker/stage_session.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/model/stage_plan.h"
#include "common/modelio/stage_checkpoint_path.h"
#include "common/status/failure_cause.h"
#include "common/status/grpc_status.h"
#include "common/status/status_macros.h"
#include "common/train/stage_initializer.h"
#include "common/transport/grpc_settings.h"
#include "common/wire/wire_tensor.h"
#include "services/stage_worker/exchange_client_reactor.h"
#include "services/stage_worker/step_run.h"

namespace resbm {
namespace {

// Serialized bytes of one boundary frame beyond its payload (header fields, checksum) are
// well under this.
constexpr int64_t kFrameOverheadBytes = 1024;

int64_t InboxBudgetBytes(const v1::JobConfig& config, int64_t wire_width, WireDtype dtype) {
  const int64_t microbatches = config.training().microbatches();
  const int64_t rows = (config.training().batch_size() + microbatches - 1) / microbatches;
  absl::StatusOr<int64_t> payload =
      WirePayloadBytes({rows, int64_t{config.model().seq_len()}, wire_width}, dtype);
  const int64_t frame = (payload.ok() ? *payload : 0) + kFrameOverheadBytes;
  return (2 * microbatches + 2) * frame;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StageSession>> StageSession::Create(
    const v1::StageAssignment& assignment, const StageSessionOptions& options) {
  RESBM_RETURN_IF_ERROR(ValidateJobConfig(assignment.config()));
  const auto& config = assignment.config();
  RESBM_ASSIGN_OR_RETURN(auto plan, PlanJobStages(config));
  const StageSpec given{assignment.stage_index(), assignment.num_stages(), assignment.first_layer(),
                        assignment.num_layers()};
  if (assignment.stage_index() >= plan.size() || !(plan[assignment.stage_index()] == given)) {
    return absl::FailedPreconditionError(
        absl::StrCat("assignment: stage ", given.index, " of ", given.num_stages, " with layers [",
                     given.first_layer, ", ", given.first_layer + given.num_layers,
                     ") does not match the job's stage plan"));
  }
  if (!given.is_last() && assignment.downstream_address().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "assignment.downstream_address: empty; expected the address of stage ", given.index + 1));
  }
  StageRunnerOptions runner_options;
  runner_options.model = ToModelOptions(config);
  runner_options.compression = ToCompressionOptions(config);
  runner_options.optimizer = ToOptimizerOptions(config);
  runner_options.spec = given;
  runner_options.seed = config.training().seed();
  runner_options.device = options.device;
  RESBM_ASSIGN_OR_RETURN(
      auto stage, WireStageRunner::Create(runner_options, ToCompressionOptions(config).wire_dtype));
  // A fine-tune's first assignment: the trained weights (the coordinator leaves init out of
  // later ones, which restore the job's own checkpoints).
  RESBM_RETURN_IF_ERROR(StageInitializer::Apply(config.init(), &stage->runner()));
  std::unique_ptr<StageSession> session(new StageSession(assignment, options, std::move(stage)));
  RESBM_RETURN_IF_ERROR(session->JoinReplicaRing());
  if (!given.is_last()) RESBM_RETURN_IF_ERROR(session->ConnectDownstream());
  return session;
}

StageSession::StageSession(const v1::StageAssignment& assignment,
                           const StageSessionOptions& options,
                           std::unique_ptr<WireStageRunner> stage)
    : assignment_(assignment),
      options_(options),
      stage_(std::move(stage)),
      sender_(std::make_unique<FrameSender>(options.max_queued_frames, options.metrics)) {
  const CompressionOptions compression = ToCompressionOptions(assignment.config());
  wire_dtype_ = compression.wire_dtype;
  wire_width_ = compression.WireWidth(assignment.config().model().d_model());
  inbox_budget_bytes_ = InboxBudgetBytes(assignment.config(), wire_width_, wire_dtype_);
}

StageSession::~StageSession() { CloseDownstream(); }

void StageSession::CloseDownstream() {
  if (!downstream_) return;
  const bool idle = downstream_->queued() == 0;
  downstream_->inbox().Close(absl::UnavailableError("stage session ended"));  // Reads on.
  // The normal end: a WritesDone, which the next stage answers with OK. The channel is
  // destroyed with this session, so the call must be over first.
  if (idle) {
    downstream_->FinishWrites();
    if (downstream_->AwaitClosed(absl::Now() + absl::Seconds(2))) return;
  }
  // Frames of an aborted step still queued, or a next stage that does not answer.
  downstream_context_->TryCancel();
  downstream_->AwaitClosed(absl::Now() + absl::Seconds(10));
}

absl::Status StageSession::Rewire(const v1::StageAssignment& assignment) {
  // The same job and stage; the config may differ only in init (a replica that adopted its
  // state from a peer was assigned without it).
  v1::JobConfig given = assignment.config(), held = assignment_.config();
  given.clear_init();
  held.clear_init();
  if (assignment.job_id() != assignment_.job_id() ||
      assignment.stage_index() != assignment_.stage_index() ||
      given.SerializeAsString() != held.SerializeAsString()) {
    return absl::FailedPreconditionError(
        absl::StrCat("keep_state: this worker holds stage ", assignment_.stage_index(), " of job '",
                     assignment_.job_id(), "'; the assignment is stage ", assignment.stage_index(),
                     " of job '", assignment.job_id(), "' (or another config)"));
  }
  const v1::InitConfig init = assignment_.config().init();
  assignment_ = assignment;
  *assignment_.mutable_config()->mutable_init() = init;
  ring_.reset();
  RESBM_RETURN_IF_ERROR(JoinReplicaRing());
  // A new stream even to the same address: frames of the failed step still on the old one
  // (sent after the next stage gave the step up) must not meet the redone step, and a link
  // that broke is mended. The next stage drops its old link when rewired (first).
  CloseDownstream();
  downstream_.reset();
  if (runner().spec().is_last()) return absl::OkStatus();
  return ConnectDownstream();
}

absl::StatusOr<v1::FetchStateResponse> StageSession::FetchState(
    const v1::FetchStateRequest& request) const {
  RESBM_RETURN_IF_ERROR(CheckJob(request.job_id()));
  if (request.stage_index() != assignment_.stage_index()) {
    return absl::FailedPreconditionError(absl::StrCat("stage_index: ", request.stage_index(),
                                                      "; this worker holds stage ",
                                                      assignment_.stage_index()));
  }
  v1::FetchStateResponse response;
  RESBM_ASSIGN_OR_RETURN(*response.mutable_state(), runner().SaveState(steps_applied_));
  response.set_steps_applied(static_cast<uint64_t>(steps_applied_));
  response.set_synced_at(static_cast<uint64_t>(synced_at_));
  return response;
}

absl::Status StageSession::AdoptStateFrom(const std::string& address) {
  auto stub = v1::StageWorker::NewStub(
      grpc::CreateCustomChannel(address,
                                options_.channel_credentials ? options_.channel_credentials
                                                             : grpc::InsecureChannelCredentials(),
                                PeerChannelArguments()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  v1::FetchStateRequest request;
  request.set_job_id(assignment_.job_id());
  request.set_stage_index(assignment_.stage_index());
  v1::FetchStateResponse response;
  const grpc::Status fetched = stub->FetchState(&context, request, &response);
  if (!fetched.ok()) {
    return Annotate(FromGrpcStatus(fetched), absl::StrCat("state_from ", address, ": "));
  }
  RESBM_ASSIGN_OR_RETURN(const int64_t steps,
                         runner().LoadState(response.state(), "state from " + address));
  steps_applied_ = steps;
  synced_at_ = std::min(steps, static_cast<int64_t>(response.synced_at()));
  return absl::OkStatus();
}

absl::Status StageSession::ConnectDownstream() {
  channel_ =
      grpc::CreateCustomChannel(assignment_.downstream_address(),
                                options_.channel_credentials ? options_.channel_credentials
                                                             : grpc::InsecureChannelCredentials(),
                                PeerChannelArguments());
  if (!channel_->WaitForConnected(absl::ToChronoTime(absl::Now() + options_.connect_timeout))) {
    return absl::UnavailableError(absl::StrCat("stage ", assignment_.stage_index() + 1, " at ",
                                               assignment_.downstream_address(),
                                               ": not reachable"));
  }
  stub_ = std::make_unique<grpc::GenericStub>(channel_);
  downstream_ = std::make_shared<FrameLink>(options_.max_queued_frames,
                                            2 * assignment_.config().training().microbatches() + 2);
  downstream_->inbox().SetByteBudget(inbox_budget_bytes_);
  downstream_context_ = std::make_shared<grpc::ClientContext>();
  ExchangeClientReactor::Start(stub_.get(), downstream_, downstream_context_);
  return absl::OkStatus();
}

absl::Status StageSession::JoinReplicaRing() {
  const int64_t replicas_wanted = std::max<int64_t>(1, assignment_.config().stages().replicas());
  const int64_t given = assignment_.replica_addresses_size();
  // Fewer than stages.replicas while a pipeline is out (its workers lost): the ring is the
  // live replicas of the stage, and a stage left with one sums nothing.
  if (given > replicas_wanted ||
      (given > 0 && static_cast<int64_t>(assignment_.replica_index()) >= given)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "assignment: replica ", assignment_.replica_index(), " of ", given,
        " replica addresses; expected an index below the addresses, at most stages.replicas ",
        replicas_wanted));
  }
  if (given <= 1) return absl::OkStatus();
  const int64_t replicas = given;
  if (options_.reduce_inbox == nullptr) {
    return absl::FailedPreconditionError("this worker cannot all-reduce (no reduce inbox)");
  }
  options_.reduce_inbox->Expect(assignment_.job_id(), assignment_.stage_index(),
                                (assignment_.replica_index() + replicas - 1) % replicas);
  GradientRing::Options ring;
  ring.job_id = assignment_.job_id();
  ring.stage = assignment_.stage_index();
  ring.replica = assignment_.replica_index();
  ring.replicas = replicas;
  ring.next_address = assignment_.replica_addresses((ring.replica + 1) % replicas);
  ring.credentials = options_.channel_credentials;
  ring_ = std::make_unique<GradientRing>(std::move(ring), options_.reduce_inbox);
  return absl::OkStatus();
}

int64_t StageSession::parameter_count() const { return stage_->parameter_count(); }

absl::Status StageSession::CheckJob(const std::string& job_id) const {
  if (job_id != assignment_.job_id()) {
    // Reassigned to another job since: for this job the worker is lost.
    return WithCause(
        absl::FailedPreconditionError(absl::StrCat("job_id: '", job_id, "'; this worker serves '",
                                                   assignment_.job_id(), "'")),
        FailureCause::kWorkerLost);
  }
  return absl::OkStatus();
}

absl::Status StageSession::ValidateRequest(const v1::RunStepRequest& request) const {
  const auto& config = assignment_.config();
  const StageSpec& spec = runner().spec();
  RESBM_RETURN_IF_ERROR(CheckJob(request.job_id()));
  if (request.mode() != v1::STEP_MODE_TRAIN && request.mode() != v1::STEP_MODE_EVAL) {
    return absl::InvalidArgumentError(
        absl::StrCat("mode: ", request.mode(), "; expected STEP_MODE_TRAIN or STEP_MODE_EVAL"));
  }
  if (request.rows() < 1 || request.rows() > config.training().batch_size() ||
      request.seq_len() < 1 || request.seq_len() > config.model().seq_len()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rows x seq_len: ", request.rows(), " x ", request.seq_len(), "; expected 1..",
                     config.training().batch_size(), " x 1..", config.model().seq_len()));
  }
  const int64_t m = request.microbatches();
  if (m < 1 || m > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("microbatches: ", m, "; expected 1..4096"));
  }
  if (request.step_microbatches() != 0 &&
      (request.step_microbatches() < m || request.step_microbatches() > 4096)) {
    return absl::InvalidArgumentError(
        absl::StrCat("step_microbatches: ", request.step_microbatches(), "; expected ", m,
                     "..4096 or 0 (this pipeline's ", m, ")"));
  }
  const int64_t ids = int64_t{request.rows()} * request.seq_len();
  auto check_ids = [&](const auto& batches, const char* field) -> absl::Status {
    if (batches.size() != m) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", batches.size(), " microbatches; expected ", m));
    }
    for (int i = 0; i < batches.size(); ++i) {
      if (batches[i].ids_size() != ids) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, "[", i, "]: ", batches[i].ids_size(), " ids; expected ", ids));
      }
    }
    return absl::OkStatus();
  };
  if (spec.is_first() || runner().uses_token_ids()) {
    RESBM_RETURN_IF_ERROR(check_ids(request.inputs(), "inputs"));
  } else if (request.inputs_size() != 0) {
    return absl::InvalidArgumentError(absl::StrCat("inputs: ", request.inputs_size(),
                                                   " microbatches for stage ", spec.index,
                                                   ", which has no token channel; expected none"));
  }
  if (spec.is_last()) RESBM_RETURN_IF_ERROR(check_ids(request.targets(), "targets"));
  for (const auto& op : request.ops()) {
    if (op.microbatch() >= m ||
        (op.kind() != v1::OP_KIND_FORWARD &&
         (op.kind() != v1::OP_KIND_BACKWARD || request.mode() != v1::STEP_MODE_TRAIN))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ops: ", v1::OpKind_Name(op.kind()), " of microbatch ", op.microbatch(),
          "; expected forward (or, in training, backward) ops of microbatches 0..", m - 1));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::RunStepResponse> StageSession::RunStep(
    const v1::RunStepRequest& request, const std::shared_ptr<FrameLink>& upstream,
    absl::Time deadline, std::shared_ptr<Cancellation> cancel) {
  RESBM_RETURN_IF_ERROR(CheckJob(request.job_id()));
  // The previous step's update, carried by this step (one coordinator round trip a step):
  // applied whatever this step then does, as it would have been by its own ApplyStep.
  if (request.has_apply())
    RESBM_RETURN_IF_ERROR(ApplyStep(request.apply(), deadline, cancel.get()));
  RESBM_RETURN_IF_ERROR(ValidateRequest(request));
  // A training step starts from zero gradients: a step redone after a lost replica must not
  // add to what this stage computed for it before (ApplyStep zeroes them too).
  if (request.mode() == v1::STEP_MODE_TRAIN) runner().AbortStep();
  const StageSpec& spec = runner().spec();
  if (!spec.is_first() && upstream == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("stage ", spec.index, ": stage ", spec.index - 1, " is not connected"));
  }
  StepParts parts;
  parts.stage = stage_.get();
  parts.sender = sender_.get();
  parts.upstream = upstream;
  parts.downstream = downstream_;
  parts.metrics = options_.metrics;
  parts.job_id = assignment_.job_id();
  parts.wire_dtype = wire_dtype_;
  parts.wire_width = wire_width_;
  parts.d_model = assignment_.config().model().d_model();
  // Replicas with an outer optimizer keep their gradients: they synchronise parameters.
  const bool outer = assignment_.config().optimizer().outer().steps() > 0;
  parts.ring = outer ? nullptr : ring_.get();
  StepRun run(request, std::move(parts), deadline, std::move(cancel));
  absl::StatusOr<v1::RunStepResponse> response = run.Finish(run.RunOps());
  // Synchronisations carried by a checkpoint are reported by the next step, of either mode.
  if (response.ok() && unreported_sync_bytes_ > 0) {
    response->set_all_reduce_bytes_sent(static_cast<uint64_t>(unreported_sync_bytes_));
    response->set_all_reduce_seconds(unreported_sync_seconds_);
    unreported_sync_bytes_ = 0;
    unreported_sync_seconds_ = 0.0;
  }
  return response;
}

absl::Status StageSession::ApplyStep(const v1::ApplyStepRequest& request, absl::Time deadline,
                                     const Cancellation* cancel) {
  RESBM_RETURN_IF_ERROR(CheckJob(request.job_id()));
  const int64_t step = static_cast<int64_t>(request.step());
  if (step < steps_applied_) return absl::OkStatus();  // Applied already.
  if (step > steps_applied_) {
    return absl::FailedPreconditionError(
        absl::StrCat("apply: step ", step, "; this stage has applied ", steps_applied_,
                     " steps, so the next is step ", steps_applied_));
  }
  if (step == steps_applied_) {
    RESBM_ASSIGN_OR_RETURN(const double clip_factor, ClipFactorOf(request));
    RESBM_RETURN_IF_ERROR(runner().ApplyStep(step, clip_factor));
    ++steps_applied_;
  }
  return SynchroniseIfDue(deadline, cancel);
}

absl::StatusOr<double> StageSession::ClipFactorOf(const v1::ApplyStepRequest& request) const {
  if (request.replica_clip_factors_size() == 0) return request.clip_factor();
  const int64_t replica = assignment_.replica_index();
  if (replica >= request.replica_clip_factors_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("apply.replica_clip_factors: ", request.replica_clip_factors_size(),
                     " factors; expected one for replica ", replica));
  }
  return request.replica_clip_factors(static_cast<int>(replica));
}

absl::Status StageSession::SynchroniseIfDue(absl::Time deadline, const Cancellation* cancel) {
  const int64_t period = assignment_.config().optimizer().outer().steps();
  if (period == 0 || ring_ == nullptr || steps_applied_ % period != 0 ||
      synced_at_ == steps_applied_) {
    return absl::OkStatus();
  }
  const auto start = std::chrono::steady_clock::now();
  RESBM_ASSIGN_OR_RETURN(std::string mine, runner().EncodeOuterDelta());
  const int64_t bytes = static_cast<int64_t>(mine.size()) * (ring_->replicas() - 1);
  std::vector<std::string> deltas;
  // Keyed by the step that ended the period: that step has no gradient all-reduce of its own.
  RESBM_RETURN_IF_ERROR(
      ring_->AllGather(steps_applied_ - 1, std::move(mine), &deltas, deadline, cancel));
  RESBM_RETURN_IF_ERROR(runner().OuterStep(deltas));
  synced_at_ = steps_applied_;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  unreported_sync_bytes_ += bytes;
  unreported_sync_seconds_ += seconds;
  if (options_.metrics != nullptr) options_.metrics->AllReduced(bytes, seconds);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> StageSession::SaveCheckpoint(const v1::SaveCheckpointRequest& request,
                                                     absl::Time deadline) {
  RESBM_RETURN_IF_ERROR(CheckJob(request.job_id()));
  if (request.has_apply()) RESBM_RETURN_IF_ERROR(ApplyStep(request.apply(), deadline, nullptr));
  const int64_t step = static_cast<int64_t>(request.step());
  RESBM_ASSIGN_OR_RETURN(const std::string path,
                         StageCheckpointPath(options_.checkpoint_dir, request.job_id(), step,
                                             assignment_.stage_index()));
  std::error_code error;
  std::filesystem::create_directories(options_.checkpoint_dir, error);
  RESBM_RETURN_IF_ERROR(runner().SaveCheckpoint(path, step));
  const auto size = std::filesystem::file_size(path, error);
  if (error) return absl::InternalError(absl::StrCat(path, ": ", error.message()));
  return static_cast<int64_t>(size);
}

absl::StatusOr<int64_t> StageSession::LoadCheckpoint(const v1::LoadCheckpointRequest& request) {
  RESBM_RETURN_IF_ERROR(CheckJob(request.job_id()));
  RESBM_ASSIGN_OR_RETURN(
      const std::string path,
      StageCheckpointPath(options_.checkpoint_dir, request.job_id(),
                          static_cast<int64_t>(request.step()), assignment_.stage_index()));
  RESBM_ASSIGN_OR_RETURN(steps_applied_, runner().LoadCheckpoint(path));
  synced_at_ = steps_applied_;  // Checkpoints are taken at synchronised states.
  return steps_applied_;
}

}  // namespace resbm
