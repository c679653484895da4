// FrameMailbox: frames that arrived on one link, waiting for the stage executor, keyed by
// (kind, step, microbatch). Reactions deliver without blocking; the executor takes with a
// deadline. A frame outside the step window, a duplicate, or an overflow fails the current
// step (never the process); a closed link fails every wait until the mailbox is reopened.
// Memory is bounded by a byte budget: once the frames held reach it, Deliver tells the reader
// to stop reading from its stream (gRPC's flow control then holds the sender back), and the
// mailbox calls the reader's resume callback when a Take or a dropped step frees room, so at
// most budget + one frame is ever held. Thread-safe.
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
#include "common/runtime/cancellation.h"
#include "resbm/v1/tensor_frame.pb.h"

namespace resbm {

class FrameMailbox {
 public:
  // At most `capacity` frames wait at once (a schedule never needs more than 2m).
  explicit FrameMailbox(int64_t capacity);

  // Reaction side: stores a frame (or refuses it, see above). Never blocks. Returns whether
  // the reader may read the next frame now; false: the budget is reached, and `on_room` (see
  // SetOnRoom) is called once there is room again or the mailbox closes.
  bool Deliver(v1::TensorFrame frame);
  // What a paused reader runs to read on; called with no lock of the mailbox held, on the
  // thread that freed room (or closed the mailbox). It must stay callable until replaced.
  void SetOnRoom(std::function<void()> on_room);
  // Bytes (serialized frame sizes) held before readers pause; 0 (the start): one frame at a
  // time. Raising it resumes a paused reader.
  void SetByteBudget(int64_t bytes);
  // The link is gone: every current and future Take fails with `status` until Reopen().
  void Close(const absl::Status& status);
  void Reopen();

  // Executor side. Starts step `step` of `job_id`: drops frames of earlier steps and clears
  // a frame error of an earlier step (one refused before this step began still fails it).
  // Frames of this step and the next are accepted; before a window's first step, frames of
  // any step are held (bounded by the capacity). Training frames (activations, gradients) and
  // evaluation frames count their steps separately: `evaluation` picks which window moves.
  void BeginStep(const std::string& job_id, int64_t step, bool evaluation);
  // Waits for the frame (kind, step, microbatch) until `deadline`, or until `cancel` (may be
  // null) trips: then its reason. Call without a lock a wake-up of `cancel` takes.
  absl::StatusOr<v1::TensorFrame> Take(v1::FrameKind kind, int64_t step, int64_t microbatch,
                                       absl::Time deadline, const Cancellation* cancel);
  // Drops every frame and error (an aborted step).
  void Clear();

  int64_t size() const;
  // Serialized bytes of the frames held.
  int64_t held_bytes() const;
  // Times Deliver told the reader to pause.
  int64_t pauses() const;

 private:
  using Key = std::tuple<int, uint64_t, uint32_t>;  // kind, step, microbatch
  struct Held {
    v1::TensorFrame frame;
    int64_t bytes = 0;
  };

  // A paused reader's callback when there is room (or the mailbox closed): the caller runs it
  // after unlocking. Empty otherwise.
  std::function<void()> ResumeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::TensorFrame> TakeLocked(v1::FrameKind kind, int64_t step, int64_t microbatch,
                                             absl::Time deadline, const Cancellation* cancel)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(std::map<Key, Held>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ClearLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t capacity_;
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::map<Key, Held> frames_ ABSL_GUARDED_BY(mu_);
  int64_t held_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t budget_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  int64_t pauses_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void()> on_room_ ABSL_GUARDED_BY(mu_);
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
