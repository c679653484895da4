#include "services/stage_worker/step_run.h"

#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/model/compute_device.h"
#include "common/model/token_id_bytes.h"
#include "common/status/non_finite.h"
#include "common/status/status_macros.h"
#include "common/wire/frame_codec.h"

namespace resbm {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

absl::Span<const int32_t> Ids(const v1::TokenIds& ids) {
  return absl::MakeConstSpan(ids.ids().data(), ids.ids_size());
}

}  // namespace

StepRun::StepRun(const v1::RunStepRequest& request, StepParts parts, absl::Time deadline,
                 std::shared_ptr<Cancellation> cancel)
    : request_(request),
      parts_(std::move(parts)),
      deadline_(deadline),
      cancel_(std::move(cancel)),
      train_(request.mode() == v1::STEP_MODE_TRAIN),
      step_(static_cast<int64_t>(request.step())) {
  if (parts_.upstream) parts_.upstream->inbox().BeginStep(parts_.job_id, step_, !train_);
  if (parts_.downstream) parts_.downstream->inbox().BeginStep(parts_.job_id, step_, !train_);
  // A failed send trips the step's token: the frame a neighbour needed never left, so the
  // waits for its answer end too.
  parts_.sender->Reset(cancel_);
  for (int64_t mb = 0; mb < request.microbatches(); ++mb) {
    reports_[mb].set_microbatch(static_cast<uint32_t>(mb));
  }
}

absl::Status StepRun::RunOps() {
  if (train_ && parts_.ring != nullptr) {
    RESBM_ASSIGN_OR_RETURN(const uint64_t checksum, parts_.stage->runner().ParameterChecksum());
    response_.set_parameter_checksum(checksum);
  }
  for (const auto& op : request_.ops()) {
    // A stage that never waits (the first, in its forwards) stops computing and sending for
    // a step that was given up as soon as the token trips.
    if (cancel_ != nullptr && cancel_->cancelled()) return cancel_->reason();
    RESBM_RETURN_IF_ERROR(op.kind() == v1::OP_KIND_FORWARD ? Forward(op.microbatch())
                                                           : Backward(op.microbatch()));
  }
  return absl::OkStatus();
}

StageInput StepRun::InputOf(int64_t mb, const WireTensor* z) const {
  StageInput input;
  input.rows = request_.rows();
  input.seq_len = request_.seq_len();
  if (spec().is_first() || parts_.stage->runner().uses_token_ids()) {
    input.ids = Ids(request_.inputs(mb));
  }
  input.z = z;
  if (spec().is_last()) input.targets = Ids(request_.targets(mb));
  return input;
}

absl::Status StepRun::Forward(int64_t mb) {
  const auto kind = train_ ? v1::FRAME_KIND_ACTIVATION : v1::FRAME_KIND_EVAL_ACTIVATION;
  std::optional<WireTensor> z;
  if (!spec().is_first()) {
    RESBM_ASSIGN_OR_RETURN(z, Receive(*parts_.upstream, kind, mb));
  }
  const StageInput input = InputOf(mb, z ? &*z : nullptr);
  auto& report = reports_[mb];
  const auto start = std::chrono::steady_clock::now();
  if (spec().is_last()) {
    const uint32_t step_microbatches =
        request_.step_microbatches() != 0 ? request_.step_microbatches() : request_.microbatches();
    absl::StatusOr<double> loss =
        parts_.stage->ForwardLoss(mb, input, train_, 1.0 / step_microbatches);
    if (loss.ok() && !std::isfinite(*loss)) {
      loss = NonFiniteError(absl::StrCat("the loss of microbatch ", mb, " is ", *loss));
    }
    if (!loss.ok()) {
      if (parts_.metrics != nullptr && IsNonFiniteError(loss.status())) {
        parts_.metrics->NonFinite("loss");
      }
      return loss.status();
    }
    report.set_loss(*loss);
  }
  std::optional<WireTransfer::Pending> out;
  if (!spec().is_last()) {
    RESBM_ASSIGN_OR_RETURN(out, parts_.stage->Forward(mb, input, train_));
  }
  report.set_forward_seconds(SecondsSince(start));
  if (parts_.metrics != nullptr) parts_.metrics->Forward(report.forward_seconds());
  if (!out) return absl::OkStatus();
  return Send(parts_.downstream, kind, mb, std::move(*out));
}

absl::Status StepRun::Backward(int64_t mb) {
  std::optional<WireTensor> grad;
  if (!spec().is_last()) {
    RESBM_ASSIGN_OR_RETURN(grad, Receive(*parts_.downstream, v1::FRAME_KIND_GRADIENT, mb));
  }
  auto& report = reports_[mb];
  const auto start = std::chrono::steady_clock::now();
  RESBM_ASSIGN_OR_RETURN(std::optional<WireTransfer::Pending> input_grad,
                         parts_.stage->Backward(mb, grad ? &*grad : nullptr));
  report.set_backward_seconds(SecondsSince(start));
  if (parts_.metrics != nullptr) parts_.metrics->Backward(report.backward_seconds());
  if (!input_grad) return absl::OkStatus();
  return Send(parts_.upstream, v1::FRAME_KIND_GRADIENT, mb, std::move(*input_grad));
}

absl::StatusOr<WireTensor> StepRun::Receive(FrameLink& link, v1::FrameKind kind, int64_t mb) {
  const bool gradient = kind == v1::FRAME_KIND_GRADIENT;
  const int64_t peer = gradient ? spec().index + 1 : spec().index - 1;
  const auto start = std::chrono::steady_clock::now();
  RESBM_ASSIGN_OR_RETURN(v1::TensorFrame frame,
                         link.inbox().Take(kind, step_, mb, deadline_, cancel_.get()));
  const double waited = SecondsSince(start);
  response_.set_wait_seconds(response_.wait_seconds() + waited);
  const uint64_t payload = frame.payload().size();
  if (parts_.metrics != nullptr) {
    parts_.metrics->Waited(gradient, waited);
    parts_.metrics->FrameReceived(peer, gradient, payload, frame.ByteSizeLong());
  }
  if (gradient) {
    response_.set_gradient_bytes_received(response_.gradient_bytes_received() + payload);
  } else {
    response_.set_activation_bytes_received(response_.activation_bytes_received() + payload);
  }
  FrameExpectation expected;
  expected.job_id = parts_.job_id;
  expected.step = step_;
  expected.num_microbatches = request_.microbatches();
  expected.kind = kind;
  expected.dtype = parts_.wire_dtype;
  expected.shape = {request_.rows(), request_.seq_len(), parts_.wire_width};
  RESBM_ASSIGN_OR_RETURN(WireTensor wire, FrameCodec::Decode(std::move(frame), expected));
  // Checked on the host, in the payload's own bits, before it goes up to the device.
  RESBM_ASSIGN_OR_RETURN(const int64_t bad, CountNonFiniteValues(wire));
  if (bad == 0) return wire;
  if (parts_.metrics != nullptr) {
    parts_.metrics->NonFinite(gradient ? "received_gradient" : "received_activation");
  }
  return NonFiniteError(absl::StrCat(
      bad, " of ", int64_t{request_.rows()} * request_.seq_len() * parts_.wire_width, " in the ",
      gradient ? "gradient" : "activation", " of microbatch ", mb, " received from stage ", peer));
}

absl::Status StepRun::Send(const std::shared_ptr<FrameLink>& link, v1::FrameKind kind, int64_t mb,
                           WireTransfer::Pending tensor) {
  const bool gradient = kind == v1::FRAME_KIND_GRADIENT;
  const int64_t positions = int64_t{request_.rows()} * request_.seq_len();
  FrameSender::Outgoing item{
      link,
      FrameHeader{parts_.job_id, step_, mb, kind},
      std::move(tensor),
      gradient ? spec().index - 1 : spec().index + 1,
      static_cast<uint64_t>(positions * parts_.d_model * 2),
      absl::StrCat("the ", gradient ? "gradient" : "activation", " of microbatch ", mb,
                   " computed by stage ", spec().index),
      deadline_};
  return parts_.sender->Send(std::move(item));
}

void StepRun::CountTokenIds() {
  if (!parts_.stage->runner().uses_token_ids()) return;
  uint64_t bytes = 0;
  for (const auto& ids : request_.inputs()) {
    const auto size = static_cast<uint64_t>(ids.ByteSizeLong());
    bytes += 1 + TokenIdBytes::VarintSize(size) + size;  // As an element of `inputs`.
  }
  response_.set_token_id_bytes_received(bytes);
  if (parts_.metrics != nullptr) parts_.metrics->TokenIdsReceived(bytes);
}

absl::Status StepRun::Complete() {
  RESBM_ASSIGN_OR_RETURN(FrameSender::Totals sent, parts_.sender->Flush(deadline_, cancel_.get()));
  response_.set_activation_bytes_sent(sent.activation_bytes);
  response_.set_activation_overhead_bytes_sent(sent.activation_overhead_bytes);
  response_.set_gradient_bytes_sent(sent.gradient_bytes);
  response_.set_gradient_overhead_bytes_sent(sent.gradient_overhead_bytes);
  if (!train_) return absl::OkStatus();
  StageRunner& runner = parts_.stage->runner();
  if (runner.in_flight() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ops: ", runner.in_flight(), " microbatches have a forward but no backward"));
  }
  if (parts_.ring != nullptr) RESBM_RETURN_IF_ERROR(AllReduceGradients());
  RESBM_ASSIGN_OR_RETURN(const double norm, runner.GradSquaredNorm());
  if (!std::isfinite(norm)) {
    if (parts_.metrics != nullptr) parts_.metrics->NonFinite("parameter_gradients");
    return NonFiniteError(absl::StrCat("the parameter gradients of stage ", spec().index,
                                       " (squared norm ", norm, ")"));
  }
  response_.set_grad_squared_norm(norm);
  return absl::OkStatus();
}

absl::Status StepRun::AllReduceGradients() {
  StageRunner& runner = parts_.stage->runner();
  const auto start = std::chrono::steady_clock::now();
  RESBM_ASSIGN_OR_RETURN(std::vector<float> gradients, runner.FlatGradients());
  RESBM_RETURN_IF_ERROR(parts_.ring->AllReduce(step_, &gradients, deadline_, cancel_.get()));
  RESBM_RETURN_IF_ERROR(runner.SetFlatGradients(gradients));
  const int64_t bytes =
      RingBytesSent(static_cast<int64_t>(gradients.size()), parts_.ring->replicas());
  response_.set_all_reduce_bytes_sent(static_cast<uint64_t>(bytes));
  response_.set_all_reduce_seconds(SecondsSince(start));
  if (parts_.metrics != nullptr) parts_.metrics->AllReduced(bytes, response_.all_reduce_seconds());
  return absl::OkStatus();
}

absl::StatusOr<v1::RunStepResponse> StepRun::Finish(absl::Status ops) {
  CountTokenIds();
  // A wait that ended for the token a failed send tripped reports that send's error.
  absl::Status status = ops.ok() ? Complete() : std::move(ops);
  StageRunner& runner = parts_.stage->runner();
  if (parts_.metrics != nullptr) {
    parts_.metrics->StepDone(train_, status.ok());
    if (!status.ok() && StageMetrics::FrameErrorReason(status) != "other") {
      parts_.metrics->FrameError(status);
    }
    parts_.metrics->DeviceMemory(runner.device(), DeviceMemoryBytes(runner.device()));
  }
  if (!status.ok()) {
    parts_.sender->Reset();
    runner.AbortStep();
    if (parts_.upstream) parts_.upstream->inbox().Clear();
    if (parts_.downstream) parts_.downstream->inbox().Clear();
    return absl::Status(status.code(), absl::StrCat("stage ", spec().index, " step ", step_, ": ",
                                                    status.message()));
  }
  for (auto& [mb, report] : reports_) *response_.add_microbatches() = report;
  return std::move(response_);
}

}  // namespace resbm
