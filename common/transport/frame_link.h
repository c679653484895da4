// FrameLink: one end of a boundary stream as the stage executor sees it: a bounded outbound
// queue drained by the stream's reactor one write at a time, and the mailbox of frames that
// arrived. Shared (shared_ptr) by the reactor and the worker, so either may go first; the
// reactor detaches in OnDone. Frames travel as raw gRPC messages (FrameMessage): a payload
// is handed to gRPC as it is, never copied by protobuf on the way out. Thread-safe.
#ifndef RESBM_COMMON_TRANSPORT_FRAME_LINK_H_
#define RESBM_COMMON_TRANSPORT_FRAME_LINK_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/transport/frame_mailbox.h"
#include "resbm/v1/tensor_frame.pb.h"

namespace resbm {

// `frame` as its stream carries it: the payload's bytes move into a slice of their own, not
// copied; the bytes are TensorFrame's serialization.
grpc::ByteBuffer FrameMessage(v1::TensorFrame frame);
// A received message as a TensorFrame (the payload copied once, out of gRPC's slices);
// InvalidArgument for bytes that are not one.
absl::StatusOr<v1::TensorFrame> ParseFrameMessage(const grpc::ByteBuffer& message);

// Implemented by the reactors: start writing `message` (which stays alive until the link's
// OnWriteDone). Called with the link's lock held; must not call back into the link.
class FrameWriter {
 public:
  virtual ~FrameWriter() = default;
  virtual void StartFrameWrite(const grpc::ByteBuffer* message) = 0;
  // Half-closes the stream after the last write (a client's normal end); same rules.
  virtual void StartFrameWritesDone() {}
};

class FrameLink {
 public:
  // At most `max_queued` frames wait to be written; the mailbox holds `inbox_capacity`.
  FrameLink(int64_t max_queued, int64_t inbox_capacity);
  FrameLink(const FrameLink&) = delete;
  FrameLink& operator=(const FrameLink&) = delete;

  // Executor side: queues a frame, blocking while the queue is full (the backpressure).
  // Unavailable once the link is closed; DeadlineExceeded if no room by `deadline`.
  absl::Status Send(v1::TensorFrame frame, absl::Time deadline);
  // The same for a frame already made a message (FrameMessage): a benchmark sends one many
  // times.
  absl::Status SendMessage(grpc::ByteBuffer message, absl::Time deadline);
  // Executor side, the normal end: no more frames; once those queued are written the stream
  // is half-closed (WritesDone), and the peer finishes it with OK. Send fails from here on.
  void FinishWrites();
  FrameMailbox& inbox() { return inbox_; }
  bool open() const;
  // Frames waiting to be written.
  int64_t queued() const;

  // Reactor side.
  void Attach(FrameWriter* writer);
  void OnWriteDone(bool ok);
  // Whether the reactor may read on (FrameMailbox::Deliver).
  bool Deliver(v1::TensorFrame frame) { return inbox_.Deliver(std::move(frame)); }
  // A read message from `peer` ("upstream stage"): parsed and cleared first (once Deliver
  // pauses the stream, a resume may start the next read into it), then delivered; whether
  // the reactor may read on. A message that is not a frame shuts the link with DataLoss
  // naming `peer`, and that error is returned for the reactor to end its call with.
  absl::StatusOr<bool> DeliverMessage(grpc::ByteBuffer* message, absl::string_view peer);
  // No new writes start; Send and every inbox wait fail with `status`. Queued frames stay
  // alive (one may be in flight): safe to call from any reaction, e.g. before Finish.
  void Shutdown(const absl::Status& status);
  // Shutdown, then detaches the writer and drops the queue. Only from the reactor's OnDone,
  // when no operation is outstanding.
  void Close(const absl::Status& status);
  // Waits until Close (the stream's OnDone) or `deadline`; whether it came. The owner of the
  // channel waits before destroying it: a channel must outlive its calls.
  bool AwaitClosed(absl::Time deadline);

 private:
  const int64_t max_queued_;
  FrameMailbox inbox_;
  mutable absl::Mutex mu_;
  absl::CondVar room_;
  std::deque<grpc::ByteBuffer> queue_ ABSL_GUARDED_BY(mu_);  // Front is being written.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool writes_finished_ ABSL_GUARDED_BY(mu_) = false;
  bool detached_ ABSL_GUARDED_BY(mu_) = false;  // Close ran.
  absl::CondVar detached_cv_;
  FrameWriter* writer_ ABSL_GUARDED_BY(mu_) = nullptr;  // Not owned; null once closed.
  absl::Status closed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRANSPORT_FRAME_LINK_H_
