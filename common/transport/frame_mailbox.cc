#include "common/transport/frame_mailbox.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/failure_cause.h"

namespace resbm {
namespace {

// A frame of another job or step: a neighbour still on an old link (after a rebuild), so the
// step fails as a link failure and the job recovers.
absl::Status LinkError(std::string message) {
  return WithCause(absl::FailedPreconditionError(std::move(message)), FailureCause::kLink);
}

int Window(int kind) { return kind == v1::FRAME_KIND_EVAL_ACTIVATION ? 1 : 0; }

// Runs a paused reader's resume callback once the mailbox's lock is released: declared
// before the MutexLock, it is destroyed after it.
struct ResumeAfterUnlock {
  std::function<void()> resume;
  ~ResumeAfterUnlock() {
    if (resume) resume();
  }
};

}  // namespace

FrameMailbox::FrameMailbox(int64_t capacity) : capacity_(capacity) {}

bool FrameMailbox::Deliver(v1::TensorFrame frame) {
  absl::MutexLock lock(&mu_);
  // Any outcome (a stored frame or a frame error) can end a wait.
  changed_.SignalAll();
  if (!closed_.ok()) return true;  // Read on: the stream ends soon, and nothing is kept.
  const int64_t step = static_cast<int64_t>(frame.step());
  const int64_t current = step_[Window(frame.kind())];
  // A refused frame fails the step it arrived in; before any step began, the first one to
  // begin (whatever its number: after a recovery a link's first step can be any step).
  auto refuse = [&](absl::Status why) {
    frame_error_ = std::move(why);
    error_step_ = current < 0 ? kNextStep : current;
  };
  if (!job_id_.empty() && frame.job_id() != job_id_) {
    refuse(
        LinkError(absl::StrCat("frame.job_id: '", frame.job_id(), "'; expected '", job_id_, "'")));
    return true;
  }
  // Before the window's first step the sender may already be on it: hold any step then.
  if (current >= 0 && (step < current || step > current + 1)) {
    refuse(LinkError(
        absl::StrCat("frame.step: ", step, "; expected ", current, " (or ", current + 1, ")")));
    return true;
  }
  Key key{frame.kind(), frame.step(), frame.microbatch()};
  if (frames_.count(key) != 0) {
    refuse(absl::InvalidArgumentError(absl::StrCat("frame (", v1::FrameKind_Name(frame.kind()),
                                                   ", step ", step, ", microbatch ",
                                                   frame.microbatch(), "): duplicate")));
    return true;
  }
  if (static_cast<int64_t>(frames_.size()) >= capacity_) {
    refuse(absl::ResourceExhaustedError(
        absl::StrCat("mailbox: ", frames_.size(), " frames waiting; the limit is ", capacity_)));
    return true;
  }
  const int64_t bytes = static_cast<int64_t>(frame.ByteSizeLong());
  frames_.emplace(key, Held{std::move(frame), bytes});
  held_bytes_ += bytes;
  if (held_bytes_ < budget_bytes_) return true;
  paused_ = true;
  ++pauses_;
  return false;
}

void FrameMailbox::SetOnRoom(std::function<void()> on_room) {
  absl::MutexLock lock(&mu_);
  on_room_ = std::move(on_room);
}

void FrameMailbox::SetByteBudget(int64_t bytes) {
  ResumeAfterUnlock after;
  absl::MutexLock lock(&mu_);
  budget_bytes_ = bytes;
  after.resume = ResumeLocked();
}

std::function<void()> FrameMailbox::ResumeLocked() {
  if (!paused_ || (closed_.ok() && held_bytes_ >= budget_bytes_ && !frames_.empty())) return {};
  paused_ = false;
  return on_room_;
}

void FrameMailbox::EraseLocked(std::map<Key, Held>::iterator it) {
  held_bytes_ -= it->second.bytes;
  frames_.erase(it);
}

void FrameMailbox::ClearLocked() {
  frames_.clear();
  held_bytes_ = 0;
}

void FrameMailbox::Close(const absl::Status& status) {
  ResumeAfterUnlock after;
  absl::MutexLock lock(&mu_);
  closed_ = status.ok() ? absl::UnavailableError("link closed") : status;
  ClearLocked();
  changed_.SignalAll();
  after.resume = ResumeLocked();  // A paused reader reads on to the stream's end.
}

void FrameMailbox::Reopen() {
  absl::MutexLock lock(&mu_);
  closed_ = absl::OkStatus();
  frame_error_ = absl::OkStatus();
}

void FrameMailbox::BeginStep(const std::string& job_id, int64_t step, bool evaluation) {
  ResumeAfterUnlock after;  // Dropped frames may make room.
  absl::MutexLock lock(&mu_);
  // Frames that arrived before the first step of a job are kept; a new job drops the old one's.
  if (!job_id_.empty() && job_id != job_id_) ClearLocked();
  job_id_ = job_id;
  const int window = evaluation ? 1 : 0;
  step_[window] = step;
  if (error_step_ == kNextStep) {
    error_step_ = step;  // Refused before any step began: fails this one.
  } else if (error_step_ < step) {
    frame_error_ = absl::OkStatus();
  }
  for (auto it = frames_.begin(); it != frames_.end();) {
    const v1::TensorFrame& frame = it->second.frame;
    const int64_t frame_step = static_cast<int64_t>(frame.step());
    if (Window(frame.kind()) != window) {
      ++it;
      continue;
    }
    // Frames held before the first step get the checks Deliver would have made.
    if (frame.job_id() != job_id_) {
      frame_error_ =
          LinkError(absl::StrCat("frame.job_id: '", frame.job_id(), "'; expected '", job_id_, "'"));
      error_step_ = step;
    } else if (frame_step > step + 1) {
      frame_error_ = LinkError(
          absl::StrCat("frame.step: ", frame_step, "; expected ", step, " (or ", step + 1, ")"));
      error_step_ = step;
    } else if (frame_step >= step) {
      ++it;
      continue;
    }
    held_bytes_ -= it->second.bytes;
    it = frames_.erase(it);  // Stale, or refused above.
  }
  after.resume = ResumeLocked();
}

absl::StatusOr<v1::TensorFrame> FrameMailbox::Take(v1::FrameKind kind, int64_t step,
                                                   int64_t microbatch, absl::Time deadline,
                                                   const Cancellation* cancel) {
  // Subscribed before the lock: a tripped token wakes this wait through changed_.
  const Cancellation::Subscription woken = Cancellation::Subscribe(cancel, [this] {
    absl::MutexLock lock(&mu_);
    changed_.SignalAll();
  });
  ResumeAfterUnlock after;
  absl::MutexLock lock(&mu_);
  absl::StatusOr<v1::TensorFrame> taken = TakeLocked(kind, step, microbatch, deadline, cancel);
  after.resume = ResumeLocked();
  return taken;
}

absl::StatusOr<v1::TensorFrame> FrameMailbox::TakeLocked(v1::FrameKind kind, int64_t step,
                                                         int64_t microbatch, absl::Time deadline,
                                                         const Cancellation* cancel) {
  const Key key{kind, static_cast<uint64_t>(step), static_cast<uint32_t>(microbatch)};
  while (true) {
    if (!closed_.ok()) return closed_;
    if (!frame_error_.ok()) return frame_error_;
    if (auto it = frames_.find(key); it != frames_.end()) {
      v1::TensorFrame frame = std::move(it->second.frame);
      EraseLocked(it);
      return frame;
    }
    if (cancel != nullptr && cancel->cancelled()) return cancel->reason();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("no ", v1::FrameKind_Name(kind),
                                                      " frame for step ", step, " microbatch ",
                                                      microbatch, " before the deadline"));
    }
    // Woken by every delivery, error, close and by the token.
    changed_.WaitWithDeadline(&mu_, deadline);
  }
}

void FrameMailbox::Clear() {
  ResumeAfterUnlock after;
  absl::MutexLock lock(&mu_);
  ClearLocked();
  frame_error_ = absl::OkStatus();
  after.resume = ResumeLocked();
}

int64_t FrameMailbox::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(frames_.size());
}

int64_t FrameMailbox::held_bytes() const {
  absl::MutexLock lock(&mu_);
  return held_bytes_;
}

int64_t FrameMailbox::pauses() const {
  absl::MutexLock lock(&mu_);
  return pauses_;
}

}  // namespace resbm
