#include "services/stage_worker/frame_sender.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/non_finite.h"

namespace resbm {

FrameSender::FrameSender(int64_t capacity, StageMetrics* metrics)
    : capacity_(capacity), metrics_(metrics), thread_([this] { Run(); }) {}

FrameSender::~FrameSender() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    queue_.clear();
  }
  thread_.join();
}

absl::Status FrameSender::Send(Outgoing item) {
  absl::MutexLock lock(&mu_);
  const absl::Condition room(
      +[](FrameSender* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
        return !self->error_.ok() || static_cast<int64_t>(self->queue_.size()) < self->capacity_;
      },
      this);
  if (!mu_.AwaitWithDeadline(room, item.deadline)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "sending ", item.what, ": ", capacity_, " tensors still waiting at the step deadline"));
  }
  if (!error_.ok()) return error_;
  queue_.push_back(std::move(item));
  return absl::OkStatus();
}

absl::StatusOr<FrameSender::Totals> FrameSender::Flush(absl::Time deadline,
                                                       const Cancellation* cancel) {
  // Subscribed unlocked; taking mu_ makes the waiter look at its condition again.
  const Cancellation::Subscription woken =
      Cancellation::Subscribe(cancel, [this] { absl::MutexLock lock(&mu_); });
  absl::MutexLock lock(&mu_);
  struct Waiting {
    FrameSender* self;
    const Cancellation* cancel;
  } waiting{this, cancel};
  const absl::Condition done(
      +[](Waiting* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return w->self->IdleLocked() || (w->cancel != nullptr && w->cancel->cancelled());
      },
      &waiting);
  if (!mu_.AwaitWithDeadline(done, deadline)) {
    return absl::DeadlineExceededError(
        absl::StrCat(queue_.size() + (sending_ ? 1 : 0), " tensors unsent at the step deadline"));
  }
  if (!error_.ok()) return error_;
  if (!IdleLocked()) return cancel->reason();
  return totals_;
}

bool FrameSender::failed() const {
  absl::MutexLock lock(&mu_);
  return !error_.ok();
}

void FrameSender::Reset(std::shared_ptr<Cancellation> step) {
  absl::MutexLock lock(&mu_);
  queue_.clear();
  mu_.Await(absl::Condition(+[](bool* sending) { return !*sending; }, &sending_));
  error_ = absl::OkStatus();
  totals_ = Totals{};
  step_ = std::move(step);
}

void FrameSender::Run() {
  mu_.Lock();
  while (true) {
    mu_.Await(absl::Condition(
        +[](FrameSender* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
          return self->stopping_ || !self->queue_.empty();
        },
        this));
    if (stopping_) break;
    Outgoing item = std::move(queue_.front());
    queue_.pop_front();
    sending_ = true;
    Totals sent;
    mu_.Unlock();
    absl::Status status = SendNow(item, &sent);
    mu_.Lock();
    sending_ = false;
    if (!error_.ok()) continue;  // The step failed already; Reset comes next.
    if (!status.ok()) {
      error_ = status;
      queue_.clear();  // The rest of the step's tensors go nowhere.
      // Unlocked: the token's wake-ups take the locks of the step's waiters, this one's too.
      std::shared_ptr<Cancellation> step = step_;
      mu_.Unlock();
      if (step) step->Cancel(status);
      mu_.Lock();
      continue;
    }
    totals_.activation_bytes += sent.activation_bytes;
    totals_.activation_overhead_bytes += sent.activation_overhead_bytes;
    totals_.gradient_bytes += sent.gradient_bytes;
    totals_.gradient_overhead_bytes += sent.gradient_overhead_bytes;
  }
  mu_.Unlock();
}

absl::Status FrameSender::SendNow(Outgoing& item, Totals* totals) {
  const bool gradient = item.header.kind == v1::FRAME_KIND_GRADIENT;
  int64_t non_finite = 0;
  absl::StatusOr<WireTensor> wire = item.tensor.Finish(&non_finite);
  if (!wire.ok()) return wire.status();
  if (non_finite != 0) {
    if (metrics_ != nullptr) metrics_->NonFinite(gradient ? "sent_gradient" : "sent_activation");
    int64_t values = 1;
    for (int64_t dim : wire->shape) values *= dim;
    return NonFiniteError(absl::StrCat(non_finite, " of ", values, " in ", item.what));
  }
  const uint64_t payload = wire->payload.size();
  v1::TensorFrame frame = FrameCodec::Encode(item.header, std::move(*wire));
  const uint64_t frame_bytes = frame.ByteSizeLong();
  if (metrics_ != nullptr) {
    metrics_->FrameSent(item.peer_stage, gradient, payload, frame_bytes);
    metrics_->Bf16Reference(item.peer_stage, item.bf16_reference_bytes);
  }
  (gradient ? totals->gradient_bytes : totals->activation_bytes) += payload;
  (gradient ? totals->gradient_overhead_bytes : totals->activation_overhead_bytes) +=
      frame_bytes - payload;
  absl::Status sent = item.link->Send(std::move(frame), item.deadline);
  if (metrics_ != nullptr) metrics_->QueueDepth(item.peer_stage, item.link->queued());
  return sent;
}

}  // namespace resbm
