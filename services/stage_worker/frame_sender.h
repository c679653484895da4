// FrameSender: the thread that sends a stage's outgoing boundary tensors. The executor hands
// it tensors whose copy to the host WireTransfer has started and goes back to computing; the
// sender waits for each copy in the order given, refuses a tensor holding NaN or Inf, frames
// the payload (checksum included) and queues it on its link, where backpressure blocks the
// sender rather than the executor. The first failure ends the step's sending: later tensors
// of the step are dropped, the error comes back from Send, Flush and failed(), and the step's
// cancellation token trips with it, so the executor's waits for frames end too.
// Thread-safe; owns its thread, which the destructor joins.
#ifndef RESBM_SERVICES_STAGE_WORKER_FRAME_SENDER_H_
#define RESBM_SERVICES_STAGE_WORKER_FRAME_SENDER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/runtime/cancellation.h"
#include "common/transport/frame_link.h"
#include "common/wire/frame_codec.h"
#include "common/wire/wire_transfer.h"
#include "services/stage_worker/stage_metrics.h"

namespace resbm {

class FrameSender {
 public:
  struct Outgoing {
    std::shared_ptr<FrameLink> link;
    FrameHeader header;
    WireTransfer::Pending tensor;
    int64_t peer_stage = 0;
    // Bytes the same tensor would take at width d in bf16 (the compression reference).
    uint64_t bf16_reference_bytes = 0;
    // Names the tensor in a NaN/Inf refusal: "the activation of microbatch 3 computed by
    // stage 1".
    std::string what;
    absl::Time deadline;
  };

  // Payload and framing bytes sent since the last Reset, by direction.
  struct Totals {
    uint64_t activation_bytes = 0;
    uint64_t activation_overhead_bytes = 0;
    uint64_t gradient_bytes = 0;
    uint64_t gradient_overhead_bytes = 0;
  };

  // At most `capacity` tensors wait for the sender at once. `metrics` (not owned) may be
  // null and must outlive the sender.
  FrameSender(int64_t capacity, StageMetrics* metrics);
  ~FrameSender();
  FrameSender(const FrameSender&) = delete;
  FrameSender& operator=(const FrameSender&) = delete;

  // Queues a tensor, blocking while `capacity` wait (DeadlineExceeded past item.deadline).
  // Returns the sender's error instead once it has failed.
  absl::Status Send(Outgoing item);
  // Waits until every queued tensor is on its link; then the first error since the last
  // Reset, or the totals. DeadlineExceeded past `deadline`; the token's reason once `cancel`
  // (may be null) trips.
  absl::StatusOr<Totals> Flush(absl::Time deadline, const Cancellation* cancel = nullptr);
  // Whether a send has failed since the last Reset.
  bool failed() const;
  // Starts afresh (a new step, or an aborted one): drops what waits, waits for the tensor
  // being sent (bounded by its deadline), clears the error and the totals. The first failure
  // from now on trips `step` (may be null) with its error.
  void Reset(std::shared_ptr<Cancellation> step = nullptr);

 private:
  void Run();
  // Sends one tensor: its copy, the NaN/Inf check, the frame, the link.
  absl::Status SendNow(Outgoing& item, Totals* totals);
  bool IdleLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.empty() && !sending_;
  }

  const int64_t capacity_;
  StageMetrics* const metrics_;
  mutable absl::Mutex mu_;
  std::deque<Outgoing> queue_ ABSL_GUARDED_BY(mu_);
  bool sending_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Cancellation> step_ ABSL_GUARDED_BY(mu_);
  Totals totals_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_FRAME_SENDER_H_
