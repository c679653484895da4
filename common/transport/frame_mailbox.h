// FrameMailbox: frames that arrived on one link, waiting for the stage executor, keyed by
// (kind, step, microbatch). Reactions deliver without blocking; the executor takes with a
// deadline. A frame outside the step window, a duplicate, or an overflow fails the current
// step (never the process); a closed link fails every wait until the mailbox is reopened.
// Thread-safe.
#ifndef RESBM_COMMON_TRANSPORT_FRAME_MAILBOX_H_
#define RESBM_COMMON_TRANSPORT_FRAME_MAILBOX_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "resbm/v1/tensor_frame.pb.h"

namespace resbm {

class FrameMailbox {
 public:
  // At most `capacity` frames wait at once (a schedule never needs more than 2m).
  explicit FrameMailbox(int64_t capacity);

  // Reaction side: stores a frame. Never blocks.
  void Deliver(v1::TensorFrame frame);
  // The link is gone: every current and future Take fails with `status` until Reopen().
  void Close(const absl::Status& status);
  void Reopen();

  // Executor side. Starts step `step` of `job_id`: drops frames of earlier steps and clears
  // a frame error of an earlier step (one refused before this step began still fails it).
  // Frames of this step and the next are accepted; before a window's first step, frames of
  // any step are held (bounded by the capacity). Training frames (activations, gradients) and
  // evaluation frames count their steps separately: `evaluation` picks which window moves.
  void BeginStep(const std::string& job_id, int64_t step, bool evaluation);
  // Waits for the frame (kind, step, microbatch) until `deadline`, or until `cancelled()`
  // returns true (polled every 20 ms; may be empty).
  absl::StatusOr<v1::TensorFrame> Take(v1::FrameKind kind, int64_t step, int64_t microbatch,
                                       absl::Time deadline, const std::function<bool()>& cancelled);
  // Drops every frame and error (an aborted step).
  void Clear();

  int64_t size() const;

 private:
  using Key = std::tuple<int, uint64_t, uint32_t>;  // kind, step, microbatch

  const int64_t capacity_;
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::map<Key, v1::TensorFrame> frames_ ABSL_GUARDED_BY(mu_);
  std::string job_id_ ABSL_GUARDED_BY(mu_);
  // Current step of the training and the evaluation window (-1: none yet).
  int64_t step_[2] ABSL_GUARDED_BY(mu_) = {-1, -1};
  absl::Status frame_error_ ABSL_GUARDED_BY(mu_);
  // The step frame_error_ belongs to; kNextStep: the next step to begin.
  static constexpr int64_t kNextStep = -2;
  int64_t error_step_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status closed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRANSPORT_FRAME_MAILBOX_H_
