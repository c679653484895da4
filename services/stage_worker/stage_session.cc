#include "services/stage_worker/stage_session.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/model/compute_device.h"
#include "common/model/stage_plan.h"
#include "common/model/token_id_bytes.h"
#include "common/model/wire_tensor.h"
#include "common/modelio/stage_checkpoint_path.h"
#include "common/status/failure_cause.h"
#include "common/status/non_finite.h"
#include "common/status/status_macros.h"
#include "common/train/stage_initializer.h"
#include "common/transport/frame_codec.h"
#include "common/transport/grpc_settings.h"
#include "services/stage_worker/exchange_client_reactor.h"

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

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Token ids of one microbatch as a (rows, seq_len) int64 tensor.
at::Tensor TokenTensor(const v1::TokenIds& ids, int64_t rows, int64_t seq_len) {
  std::vector<int64_t> values(ids.ids().begin(), ids.ids().end());
  return torch::from_blob(values.data(), {rows, seq_len}, torch::kInt64).clone();  // (b, T)
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
  RESBM_ASSIGN_OR_RETURN(auto runner, StageRunner::Create(runner_options));
  // A fine-tune's first assignment: the trained weights (the coordinator leaves init out of
  // later ones, which restore the job's own checkpoints).
  RESBM_RETURN_IF_ERROR(StageInitializer::Apply(config.init(), runner.get()));
  RESBM_ASSIGN_OR_RETURN(auto transfer, WireTransfer::Create(runner->device()));
  std::unique_ptr<StageSession> session(
      new StageSession(assignment, options, std::move(runner), std::move(transfer)));
  if (!given.is_last()) RESBM_RETURN_IF_ERROR(session->ConnectDownstream());
  return session;
}

StageSession::StageSession(const v1::StageAssignment& assignment,
                           const StageSessionOptions& options, std::unique_ptr<StageRunner> runner,
                           std::unique_ptr<WireTransfer> transfer)
    : assignment_(assignment),
      options_(options),
      runner_(std::move(runner)),
      transfer_(std::move(transfer)),
      sender_(std::make_unique<FrameSender>(options.max_queued_frames, options.metrics)) {
  const CompressionOptions compression = ToCompressionOptions(assignment.config());
  wire_dtype_ = compression.wire_dtype;
  wire_width_ = compression.WireWidth(assignment.config().model().d_model());
  inbox_budget_bytes_ = InboxBudgetBytes(assignment.config(), wire_width_, wire_dtype_);
}

StageSession::~StageSession() {
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
  stub_ = v1::StageWorker::NewStub(channel_);
  downstream_ = std::make_shared<FrameLink>(options_.max_queued_frames,
                                            2 * assignment_.config().training().microbatches() + 2);
  downstream_->inbox().SetByteBudget(inbox_budget_bytes_);
  downstream_context_ = std::make_shared<grpc::ClientContext>();
  ExchangeClientReactor::Start(stub_.get(), downstream_, downstream_context_);
  return absl::OkStatus();
}

int64_t StageSession::parameter_count() const {
  int64_t count = 0;
  for (const auto& [name, p] : runner_->Parameters()) count += p.numel();
  return count;
}

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
  const StageSpec& spec = runner_->spec();
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
  if (spec.is_first() || runner_->uses_token_ids()) {
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
    absl::Time deadline, const std::function<bool()>& cancelled) {
  RESBM_RETURN_IF_ERROR(ValidateRequest(request));
  const StageSpec& spec = runner_->spec();
  if (!spec.is_first() && upstream == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("stage ", spec.index, ": stage ", spec.index - 1, " is not connected"));
  }
  const bool train = request.mode() == v1::STEP_MODE_TRAIN;
  const auto forward_kind = train ? v1::FRAME_KIND_ACTIVATION : v1::FRAME_KIND_EVAL_ACTIVATION;
  const int64_t step = static_cast<int64_t>(request.step());
  const int64_t m = request.microbatches();
  const int64_t rows = request.rows(), seq = request.seq_len();
  const std::string& job = assignment_.job_id();
  const int64_t d_model = assignment_.config().model().d_model();
  StageMetrics* const metrics = options_.metrics;
  if (upstream) upstream->inbox().BeginStep(job, step, !train);
  if (downstream_) downstream_->inbox().BeginStep(job, step, !train);
  sender_->Reset();
  // A failed send ends the step's waits too: the frame a neighbour needed never left.
  auto stop_waiting = [&] { return sender_->failed() || (cancelled && cancelled()); };

  v1::RunStepResponse response;
  std::map<int64_t, v1::MicrobatchReport> reports;
  for (int64_t mb = 0; mb < m; ++mb) reports[mb].set_microbatch(static_cast<uint32_t>(mb));

  // Takes the frame (kind, microbatch) from `link` and decodes it into a tensor.
  auto receive = [&](FrameLink& link, v1::FrameKind kind, int64_t mb,
                     uint64_t* bytes) -> absl::StatusOr<at::Tensor> {
    const auto start = std::chrono::steady_clock::now();
    RESBM_ASSIGN_OR_RETURN(v1::TensorFrame frame,
                           link.inbox().Take(kind, step, mb, deadline, stop_waiting));
    const double waited = SecondsSince(start);
    response.set_wait_seconds(response.wait_seconds() + waited);
    const bool gradient = kind == v1::FRAME_KIND_GRADIENT;
    if (metrics != nullptr) {
      metrics->Waited(gradient, waited);
      metrics->FrameReceived(gradient ? spec.index + 1 : spec.index - 1, gradient,
                             frame.payload().size(), frame.ByteSizeLong());
    }
    FrameExpectation expected;
    expected.job_id = job;
    expected.step = step;
    expected.num_microbatches = m;
    expected.kind = kind;
    expected.dtype = wire_dtype_;
    expected.shape = {rows, seq, wire_width_};
    *bytes += frame.payload().size();
    RESBM_ASSIGN_OR_RETURN(WireTensor wire, FrameCodec::Decode(std::move(frame), expected));
    // Checked on the host, in the payload's own bits, before it goes up to the device.
    RESBM_ASSIGN_OR_RETURN(const int64_t bad, CountNonFiniteValues(wire));
    if (bad != 0) {
      if (metrics != nullptr) {
        metrics->NonFinite(gradient ? "received_gradient" : "received_activation");
      }
      return NonFiniteError(absl::StrCat(
          bad, " of ", rows * seq * wire_width_, " in the ", gradient ? "gradient" : "activation",
          " of microbatch ", mb, " received from stage ",
          gradient ? spec.index + 1 : spec.index - 1));
    }
    return transfer_->Upload(wire);  // (b, T, k) on the device
  };
  // Starts x's copy to the host and hands it to the sender: the executor goes on computing.
  auto send = [&](const std::shared_ptr<FrameLink>& link, v1::FrameKind kind, int64_t mb,
                  const at::Tensor& x) -> absl::Status {
    const bool gradient = kind == v1::FRAME_KIND_GRADIENT;
    RESBM_ASSIGN_OR_RETURN(WireTransfer::Pending tensor, transfer_->StartEncode(x, wire_dtype_));
    FrameSender::Outgoing item{link,
                               FrameHeader{job, step, mb, kind},
                               std::move(tensor),
                               gradient ? spec.index - 1 : spec.index + 1,
                               static_cast<uint64_t>(rows * seq * d_model * 2),
                               absl::StrCat("the ", gradient ? "gradient" : "activation",
                                            " of microbatch ", mb, " computed by stage ",
                                            spec.index),
                               deadline};
    return sender_->Send(std::move(item));
  };

  auto run_ops = [&]() -> absl::Status {
    for (const auto& op : request.ops()) {
      const int64_t mb = op.microbatch();
      auto& report = reports[mb];
      if (op.kind() == v1::OP_KIND_FORWARD) {
        at::Tensor input;
        // The stage's token channel reads the microbatch's ids besides z.
        const at::Tensor tokens =
            runner_->uses_token_ids() ? TokenTensor(request.inputs(mb), rows, seq) : at::Tensor();
        if (spec.is_first()) {
          input = TokenTensor(request.inputs(mb), rows, seq);
        } else {
          uint64_t received = 0;
          RESBM_ASSIGN_OR_RETURN(input, receive(*upstream, forward_kind, mb, &received));
          response.set_activation_bytes_received(response.activation_bytes_received() + received);
        }
        const auto start = std::chrono::steady_clock::now();
        if (spec.is_last()) {
          at::Tensor targets = TokenTensor(request.targets(mb), rows, seq);
          absl::StatusOr<double> loss =
              train ? runner_->ForwardLoss(mb, input, targets, 1.0 / m, tokens)
                    : runner_->EvaluateLoss(input, targets, tokens);
          if (loss.ok() && !std::isfinite(*loss)) {
            loss = NonFiniteError(absl::StrCat("the loss of microbatch ", mb, " is ", *loss));
          }
          if (!loss.ok()) {
            if (metrics != nullptr && IsNonFiniteError(loss.status())) metrics->NonFinite("loss");
            return loss.status();
          }
          report.set_loss(*loss);
          report.set_forward_seconds(SecondsSince(start));
          if (metrics != nullptr) metrics->Forward(report.forward_seconds());
        } else {
          at::Tensor z;
          if (train) {
            RESBM_ASSIGN_OR_RETURN(z, runner_->Forward(mb, input, tokens));
          } else {
            RESBM_ASSIGN_OR_RETURN(z, runner_->Evaluate(input, tokens));
          }
          report.set_forward_seconds(SecondsSince(start));
          if (metrics != nullptr) metrics->Forward(report.forward_seconds());
          RESBM_RETURN_IF_ERROR(send(downstream_, forward_kind, mb, z));
        }
      } else {
        at::Tensor grad;
        if (!spec.is_last()) {
          uint64_t received = 0;
          RESBM_ASSIGN_OR_RETURN(grad,
                                 receive(*downstream_, v1::FRAME_KIND_GRADIENT, mb, &received));
          response.set_gradient_bytes_received(response.gradient_bytes_received() + received);
        }
        const auto start = std::chrono::steady_clock::now();
        RESBM_ASSIGN_OR_RETURN(at::Tensor input_grad, runner_->Backward(mb, grad));
        report.set_backward_seconds(SecondsSince(start));
        if (metrics != nullptr) metrics->Backward(report.backward_seconds());
        if (!spec.is_first()) {
          RESBM_RETURN_IF_ERROR(send(upstream, v1::FRAME_KIND_GRADIENT, mb, input_grad));
        }
      }
    }
    return absl::OkStatus();
  };

  absl::Status status = run_ops();
  if (runner_->uses_token_ids()) {
    uint64_t bytes = 0;
    for (const auto& ids : request.inputs()) {
      const auto size = static_cast<uint64_t>(ids.ByteSizeLong());
      bytes += 1 + TokenIdBytes::VarintSize(size) + size;  // As an element of `inputs`.
    }
    response.set_token_id_bytes_received(bytes);
    if (metrics != nullptr) metrics->TokenIdsReceived(bytes);
  }
  if (status.ok()) {
    auto sent = sender_->Flush(deadline, cancelled);
    if (sent.ok()) {
      response.set_activation_bytes_sent(sent->activation_bytes);
      response.set_activation_overhead_bytes_sent(sent->activation_overhead_bytes);
      response.set_gradient_bytes_sent(sent->gradient_bytes);
      response.set_gradient_overhead_bytes_sent(sent->gradient_overhead_bytes);
    } else {
      status = sent.status();
    }
  } else if (sender_->failed() && (status.code() == absl::StatusCode::kCancelled ||
                                    status.code() == absl::StatusCode::kDeadlineExceeded)) {
    // A wait that ended without its frame: the failed send (a refused tensor, a lost link)
    // is the cause to report.
    status = sender_->Flush(deadline).status();
  }
  if (status.ok() && train && runner_->in_flight() != 0) {
    status = absl::InvalidArgumentError(absl::StrCat(
        "ops: ", runner_->in_flight(), " microbatches have a forward but no backward"));
  }
  if (status.ok() && train) {
    auto norm = runner_->GradSquaredNorm();
    if (norm.ok() && !std::isfinite(*norm)) {
      if (metrics != nullptr) metrics->NonFinite("parameter_gradients");
      norm = NonFiniteError(absl::StrCat("the parameter gradients of stage ", spec.index,
                                         " (squared norm ", *norm, ")"));
    }
    if (norm.ok()) {
      response.set_grad_squared_norm(*norm);
    } else {
      status = norm.status();
    }
  }
  if (metrics != nullptr) {
    metrics->StepDone(train, status.ok());
    if (!status.ok() && StageMetrics::FrameErrorReason(status) != "other") {
      metrics->FrameError(status);
    }
    metrics->DeviceMemory(runner_->device(), DeviceMemoryBytes(runner_->device()));
  }
  if (!status.ok()) {
    sender_->Reset();
    runner_->AbortStep();
    if (upstream) upstream->inbox().Clear();
    if (downstream_) downstream_->inbox().Clear();
    return absl::Status(status.code(),
                        absl::StrCat("stage ", spec.index, " step ", step, ": ", status.message()));
  }
  for (auto& [mb, report] : reports) *response.add_microbatches() = report;
  return response;
}

absl::Status StageSession::ApplyStep(const v1::ApplyStepRequest& request) {
  RESBM_RETURN_IF_ERROR(CheckJob(request.job_id()));
  return runner_->ApplyStep(static_cast<int64_t>(request.step()), request.clip_factor());
}

absl::StatusOr<int64_t> StageSession::SaveCheckpoint(const v1::SaveCheckpointRequest& request) {
  RESBM_RETURN_IF_ERROR(CheckJob(request.job_id()));
  const int64_t step = static_cast<int64_t>(request.step());
  RESBM_ASSIGN_OR_RETURN(const std::string path,
                         StageCheckpointPath(options_.checkpoint_dir, request.job_id(), step,
                                             assignment_.stage_index()));
  std::error_code error;
  std::filesystem::create_directories(options_.checkpoint_dir, error);
  RESBM_RETURN_IF_ERROR(runner_->SaveCheckpoint(path, step));
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
  return runner_->LoadCheckpoint(path);
}

}  // namespace resbm
