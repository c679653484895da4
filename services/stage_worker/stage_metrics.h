// StageMetrics: a stage worker's Prometheus metrics (names and labels in the README's table).
// Labels are bounded: a peer stage index, a direction, a frame kind, an error reason from a
// fixed list; never a step or microbatch. Thread-safe (prometheus-cpp metrics are).
#ifndef RESBM_SERVICES_STAGE_WORKER_STAGE_METRICS_H_
#define RESBM_SERVICES_STAGE_WORKER_STAGE_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace resbm {

class StageMetrics {
 public:
  explicit StageMetrics(std::shared_ptr<prometheus::Registry> registry);

  // A frame to or from `peer_stage`: its payload and the framing around it.
  void FrameSent(int64_t peer_stage, bool gradient, uint64_t payload_bytes, uint64_t frame_bytes);
  void FrameReceived(int64_t peer_stage, bool gradient, uint64_t payload_bytes,
                     uint64_t frame_bytes);
  // Payload that an uncompressed bf16 boundary would have carried for the same tokens.
  void Bf16Reference(int64_t peer_stage, uint64_t bytes);
  // Token ids the coordinator sent with a step for this stage's token channel.
  void TokenIdsReceived(uint64_t bytes);
  // One gradient all-reduce over the stage's replicas: bytes sent, seconds it took.
  void AllReduced(int64_t bytes, double seconds);
  void Forward(double seconds);
  void Backward(double seconds);
  // Time blocked on the previous stage's activation or the next stage's gradient.
  void Waited(bool for_gradient, double seconds);
  void QueueDepth(int64_t peer_stage, int64_t frames);
  // A step failed because of a refused frame: its reason from the status message.
  void FrameError(const absl::Status& status);
  // NaN or Inf found in `where` ("received_activation", "sent_gradient", "loss", ...).
  void NonFinite(const std::string& where);
  void StepDone(bool train, bool ok);
  // An Exchange stream from the previous stage ended: "writes_done" (its normal end) or
  // "cancelled".
  void ExchangeEnded(const std::string& how);
  void Assigned(int64_t stage, int64_t num_stages);
  void Released();
  // Resident memory of the process (CPU) or allocated device memory.
  void DeviceMemory(const std::string& device, double bytes);

  // The label of a frame error ("step", "shape", "checksum", ...; "other" when unknown).
  static std::string FrameErrorReason(const absl::Status& status);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& bytes_;
  prometheus::Family<prometheus::Counter>& payload_bytes_;
  prometheus::Family<prometheus::Counter>& bf16_bytes_;
  prometheus::Family<prometheus::Counter>& frames_;
  prometheus::Family<prometheus::Gauge>& compression_;
  prometheus::Family<prometheus::Histogram>& compute_;
  prometheus::Family<prometheus::Counter>& wait_;
  prometheus::Family<prometheus::Gauge>& queue_;
  prometheus::Family<prometheus::Counter>& frame_errors_;
  prometheus::Family<prometheus::Counter>& non_finite_;
  prometheus::Family<prometheus::Counter>& steps_;
  prometheus::Family<prometheus::Counter>& exchange_ends_;
  prometheus::Family<prometheus::Gauge>& stage_;
  absl::Mutex stage_mu_;
  // The series of the stage this worker runs; null when idle.
  prometheus::Gauge* stage_gauge_ ABSL_GUARDED_BY(stage_mu_) = nullptr;
  prometheus::Family<prometheus::Gauge>& memory_;
  prometheus::Counter& token_id_bytes_;
  prometheus::Counter& all_reduce_bytes_;
  prometheus::Counter& all_reduce_seconds_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_STAGE_METRICS_H_
