#include "common/transport/frame_link.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/transport/bulk_message.h"

namespace resbm {

grpc::ByteBuffer FrameMessage(v1::TensorFrame frame) {
  const BulkBytes payload = BulkBytes::Own(std::move(*frame.mutable_payload()));
  frame.clear_payload();
  return JoinBulkField(frame, v1::TensorFrame::kPayloadFieldNumber, payload);
}

absl::StatusOr<v1::TensorFrame> ParseFrameMessage(const grpc::ByteBuffer& message) {
  v1::TensorFrame frame;
  BulkBytes payload;
  absl::Status parsed =
      SplitBulkField(message, v1::TensorFrame::kPayloadFieldNumber, &frame, &payload);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("frame: ", parsed.message()));
  }
  frame.set_payload(payload.ToString());
  return frame;
}

FrameLink::FrameLink(int64_t max_queued, int64_t inbox_capacity)
    : max_queued_(max_queued), inbox_(inbox_capacity) {
  closed_ = absl::UnavailableError("link not connected yet");
}

bool FrameLink::open() const {
  absl::MutexLock lock(&mu_);
  return closed_.ok();
}

int64_t FrameLink::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

void FrameLink::Attach(FrameWriter* writer) {
  absl::MutexLock lock(&mu_);
  writer_ = writer;
  closed_ = absl::OkStatus();
  inbox_.Reopen();
}

absl::Status FrameLink::Send(v1::TensorFrame frame, absl::Time deadline) {
  return SendMessage(FrameMessage(std::move(frame)), deadline);  // Serialized outside the lock.
}

absl::Status FrameLink::SendMessage(grpc::ByteBuffer message, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (closed_.ok() && static_cast<int64_t>(queue_.size()) >= max_queued_) {
    if (room_.WaitWithDeadline(&mu_, deadline)) {
      return absl::DeadlineExceededError(
          absl::StrCat("link: outbound queue full (", queue_.size(), " frames) until deadline"));
    }
  }
  if (!closed_.ok()) return closed_;
  if (writes_finished_) return absl::FailedPreconditionError("link: writes already finished");
  queue_.push_back(std::move(message));
  if (!writing_) {
    writing_ = true;
    writer_->StartFrameWrite(&queue_.front());
  }
  return absl::OkStatus();
}

void FrameLink::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  if (!closed_.ok()) return;
  if (!queue_.empty()) queue_.pop_front();
  room_.SignalAll();
  if (!ok) {
    writing_ = false;
    return;  // The reactor sees the failure in OnDone and closes the link.
  }
  if (!queue_.empty()) {
    writer_->StartFrameWrite(&queue_.front());
  } else {
    writing_ = false;
    if (writes_finished_) writer_->StartFrameWritesDone();
  }
}

void FrameLink::FinishWrites() {
  absl::MutexLock lock(&mu_);
  if (!closed_.ok() || writes_finished_) return;
  writes_finished_ = true;
  if (!writing_) writer_->StartFrameWritesDone();
}

void FrameLink::Shutdown(const absl::Status& status) {
  const absl::Status why = status.ok() ? absl::UnavailableError("link closed") : status;
  {
    absl::MutexLock lock(&mu_);
    if (closed_.ok()) closed_ = why;
    room_.SignalAll();
  }
  inbox_.Close(why);
}

absl::StatusOr<bool> FrameLink::DeliverMessage(grpc::ByteBuffer* message, absl::string_view peer) {
  absl::StatusOr<v1::TensorFrame> frame = ParseFrameMessage(*message);
  message->Clear();
  if (!frame.ok()) {
    const absl::Status error = absl::DataLossError(
        absl::StrCat(peer, " sent what is not a frame: ", frame.status().message()));
    Shutdown(error);
    return error;
  }
  return Deliver(*std::move(frame));
}

void FrameLink::Close(const absl::Status& status) {
  Shutdown(status);
  absl::MutexLock lock(&mu_);
  writer_ = nullptr;
  queue_.clear();
  writing_ = false;
  detached_ = true;
  detached_cv_.SignalAll();
}

bool FrameLink::AwaitClosed(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (!detached_) {
    if (detached_cv_.WaitWithDeadline(&mu_, deadline)) return detached_;
  }
  return true;
}

}  // namespace resbm
