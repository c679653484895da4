#include "services/stage_worker/stage_metrics.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace resbm {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

const prometheus::Histogram::BucketBoundaries& ComputeBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *buckets;
}

std::string Stage(int64_t s) { return absl::StrCat(s); }

}  // namespace

StageMetrics::StageMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      bytes_(BuildCounter()
                 .Name("resbm_transport_bytes_total")
                 .Help("Bytes of boundary frames (payload and framing) sent to or received "
                       "from a neighbouring stage")
                 .Register(*registry_)),
      payload_bytes_(BuildCounter()
                         .Name("resbm_transport_payload_bytes_total")
                         .Help("Tensor payload bytes of boundary frames, by kind")
                         .Register(*registry_)),
      bf16_bytes_(BuildCounter()
                      .Name("resbm_transport_bf16_reference_bytes_total")
                      .Help("Bytes an uncompressed bf16 boundary would have sent for the same "
                            "tokens (d values x 2 bytes per token)")
                      .Register(*registry_)),
      frames_(BuildCounter()
                  .Name("resbm_transport_frames_total")
                  .Help("Boundary frames sent to or received from a neighbouring stage")
                  .Register(*registry_)),
      compression_(BuildGauge()
                       .Name("resbm_transport_compression_ratio")
                       .Help("bf16 reference bytes / payload bytes sent to a neighbouring "
                             "stage, over the worker's life")
                       .Register(*registry_)),
      compute_(BuildHistogram()
                   .Name("resbm_stage_compute_seconds")
                   .Help("Seconds of one forward or backward op of one microbatch")
                   .Register(*registry_)),
      wait_(BuildCounter()
                .Name("resbm_stage_wait_seconds_total")
                .Help("Seconds blocked waiting for the previous stage's activation or the next "
                      "stage's gradient (the pipeline bubble, as this stage sees it)")
                .Register(*registry_)),
      queue_(BuildGauge()
                 .Name("resbm_transport_queue_frames")
                 .Help("Frames queued for sending to a neighbouring stage")
                 .Register(*registry_)),
      frame_errors_(BuildCounter()
                        .Name("resbm_transport_frame_errors_total")
                        .Help("Steps failed by a refused frame, by reason")
                        .Register(*registry_)),
      non_finite_(BuildCounter()
                      .Name("resbm_stage_non_finite_total")
                      .Help("Steps stopped by NaN or Inf, by where it was found")
                      .Register(*registry_)),
      steps_(BuildCounter()
                 .Name("resbm_stage_steps_total")
                 .Help("Steps (training or evaluation) this worker ran, by outcome")
                 .Register(*registry_)),
      exchange_ends_(BuildCounter()
                         .Name("resbm_stage_exchange_streams_ended_total")
                         .Help("Exchange streams from the previous stage that ended, by how "
                               "(writes_done: its normal end; cancelled)")
                         .Register(*registry_)),
      stage_(BuildGauge()
                 .Name("resbm_stage_info")
                 .Help("1 for the stage this worker runs (label stage, num_stages); absent "
                       "when idle")
                 .Register(*registry_)),
      memory_(BuildGauge()
                  .Name("resbm_device_memory_bytes")
                  .Help("Memory in use: resident set on cpu, allocated tensors on cuda")
                  .Register(*registry_)),
      token_id_bytes_(BuildCounter()
                          .Name("resbm_token_id_bytes_total")
                          .Help("Token-id bytes this stage's token channel was sent by the "
                                "coordinator with its steps (not over a boundary link)")
                          .Register(*registry_)
                          .Add({})),
      all_reduce_bytes_(BuildCounter()
                            .Name("resbm_all_reduce_bytes_total")
                            .Help("Bytes this replica sent in its stage's gradient all-reduce "
                                  "(to the next replica on the ring)")
                            .Register(*registry_)
                            .Add({})),
      all_reduce_seconds_(BuildCounter()
                              .Name("resbm_all_reduce_seconds_total")
                              .Help("Seconds this replica spent in its stage's gradient "
                                    "all-reduce (waiting for the other replicas included)")
                              .Register(*registry_)
                              .Add({})) {}

void StageMetrics::AllReduced(int64_t bytes, double seconds) {
  all_reduce_bytes_.Increment(static_cast<double>(bytes));
  all_reduce_seconds_.Increment(seconds);
}

void StageMetrics::TokenIdsReceived(uint64_t bytes) {
  token_id_bytes_.Increment(static_cast<double>(bytes));
}

void StageMetrics::FrameSent(int64_t peer_stage, bool gradient, uint64_t payload_bytes,
                             uint64_t frame_bytes) {
  const std::string peer = Stage(peer_stage);
  bytes_.Add({{"direction", "sent"}, {"peer_stage", peer}}).Increment(frame_bytes);
  frames_.Add({{"direction", "sent"}, {"peer_stage", peer}}).Increment();
  payload_bytes_
      .Add({{"direction", "sent"},
            {"peer_stage", peer},
            {"kind", gradient ? "gradient" : "activation"}})
      .Increment(payload_bytes);
}

void StageMetrics::FrameReceived(int64_t peer_stage, bool gradient, uint64_t payload_bytes,
                                 uint64_t frame_bytes) {
  const std::string peer = Stage(peer_stage);
  bytes_.Add({{"direction", "received"}, {"peer_stage", peer}}).Increment(frame_bytes);
  frames_.Add({{"direction", "received"}, {"peer_stage", peer}}).Increment();
  payload_bytes_
      .Add({{"direction", "received"},
            {"peer_stage", peer},
            {"kind", gradient ? "gradient" : "activation"}})
      .Increment(payload_bytes);
}

void StageMetrics::Bf16Reference(int64_t peer_stage, uint64_t bytes) {
  const std::string peer = Stage(peer_stage);
  auto& reference = bf16_bytes_.Add({{"direction", "sent"}, {"peer_stage", peer}});
  reference.Increment(bytes);
  double payload = 0;
  for (const char* kind : {"activation", "gradient"}) {
    payload +=
        payload_bytes_.Add({{"direction", "sent"}, {"peer_stage", peer}, {"kind", kind}}).Value();
  }
  if (payload > 0) compression_.Add({{"peer_stage", peer}}).Set(reference.Value() / payload);
}

void StageMetrics::Forward(double seconds) {
  compute_.Add({{"op", "forward"}}, ComputeBuckets()).Observe(seconds);
}

void StageMetrics::Backward(double seconds) {
  compute_.Add({{"op", "backward"}}, ComputeBuckets()).Observe(seconds);
}

void StageMetrics::Waited(bool for_gradient, double seconds) {
  wait_.Add({{"waiting_for", for_gradient ? "gradient" : "activation"}}).Increment(seconds);
}

void StageMetrics::QueueDepth(int64_t peer_stage, int64_t frames) {
  queue_.Add({{"peer_stage", Stage(peer_stage)}}).Set(static_cast<double>(frames));
}

std::string StageMetrics::FrameErrorReason(const absl::Status& status) {
  // The frame checks name the field first ("frame.step: 7; expected 0").
  static const char* kFields[] = {"format_version", "job_id", "step",  "microbatch", "kind",
                                  "dtype",          "shape",  "scale", "payload",    "checksum"};
  for (const char* field : kFields) {
    if (absl::StrContains(status.message(), absl::StrCat("frame.", field, ":"))) return field;
  }
  if (absl::StrContains(status.message(), "duplicate")) return "duplicate";
  if (absl::StrContains(status.message(), "mailbox")) return "overflow";
  return "other";
}

void StageMetrics::FrameError(const absl::Status& status) {
  frame_errors_.Add({{"reason", FrameErrorReason(status)}}).Increment();
}

void StageMetrics::ExchangeEnded(const std::string& how) {
  exchange_ends_.Add({{"how", how}}).Increment();
}

void StageMetrics::NonFinite(const std::string& where) {
  non_finite_.Add({{"where", where}}).Increment();
}

void StageMetrics::StepDone(bool train, bool ok) {
  steps_.Add({{"mode", train ? "train" : "eval"}, {"outcome", ok ? "ok" : "failed"}}).Increment();
}

void StageMetrics::Assigned(int64_t stage, int64_t num_stages) {
  absl::MutexLock lock(&stage_mu_);
  if (stage_gauge_ != nullptr) stage_.Remove(stage_gauge_);
  stage_gauge_ = &stage_.Add({{"stage", Stage(stage)}, {"num_stages", Stage(num_stages)}});
  stage_gauge_->Set(1);
}

void StageMetrics::Released() {
  absl::MutexLock lock(&stage_mu_);
  if (stage_gauge_ != nullptr) stage_.Remove(stage_gauge_);
  stage_gauge_ = nullptr;
}

void StageMetrics::DeviceMemory(const std::string& device, double bytes) {
  memory_.Add({{"device", device}}).Set(bytes);
}

}  // namespace resbm
