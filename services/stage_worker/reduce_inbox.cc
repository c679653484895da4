#include "services/stage_worker/reduce_inbox.h"

#include "absl/strings/str_cat.h"

namespace resbm {

void ReduceInbox::Expect(const std::string& job_id, int64_t stage, int64_t from_replica) {
  absl::MutexLock lock(&mu_);
  job_id_ = job_id;
  stage_ = stage;
  from_replica_ = from_replica;
  oldest_step_ = 0;
  held_.clear();
}

absl::Status ReduceInbox::Deliver(const v1::ReduceChunkRequest& chunk, BulkBytes values) {
  absl::MutexLock lock(&mu_);
  if (job_id_.empty() || chunk.job_id() != job_id_ ||
      static_cast<int64_t>(chunk.stage_index()) != stage_ ||
      static_cast<int64_t>(chunk.from_replica()) != from_replica_) {
    const std::string serving = job_id_.empty() ? "nothing"
                                                : absl::StrCat("job '", job_id_, "' stage ", stage_,
                                                               " from replica ", from_replica_);
    return absl::FailedPreconditionError(
        absl::StrCat("reduce chunk of job '", chunk.job_id(), "' stage ", chunk.stage_index(),
                     " from replica ", chunk.from_replica(), "; this worker reduces ", serving));
  }
  const int64_t step = static_cast<int64_t>(chunk.step());
  if (step < oldest_step_) return absl::OkStatus();  // A step given up on: nobody takes it.
  const Key key{step, chunk.round(), chunk.piece()};
  if (held_.count(key) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("reduce chunk of step ", step, " round ",
                                                 chunk.round(), " piece ", chunk.piece(),
                                                 ": held already"));
  }
  if (static_cast<int64_t>(held_.size()) >= kMaxHeld) {
    return absl::ResourceExhaustedError(
        absl::StrCat("reduce chunks: ", held_.size(), " held; expected at most ", kMaxHeld));
  }
  held_.emplace(key, std::move(values));
  arrived_.SignalAll();
  return absl::OkStatus();
}

absl::StatusOr<BulkBytes> ReduceInbox::Take(int64_t step, int64_t round, int64_t piece,
                                            absl::Time deadline, const Cancellation* cancel) {
  const Cancellation::Subscription woken = Cancellation::Subscribe(cancel, [this] {
    absl::MutexLock lock(&mu_);
    arrived_.SignalAll();
  });
  absl::MutexLock lock(&mu_);
  if (step > oldest_step_) {
    oldest_step_ = step;
    held_.erase(held_.begin(), held_.lower_bound(Key{step, 0, 0}));
  }
  const Key key{step, round, piece};
  while (held_.count(key) == 0) {
    if (cancel != nullptr && cancel->cancelled()) return cancel->reason();
    if (arrived_.WaitWithDeadline(&mu_, deadline) && held_.count(key) == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("step ", step, ": the all-reduce chunk of round ", round, " (piece ", piece,
                       ") from the previous replica"));
    }
  }
  BulkBytes values = std::move(held_[key]);
  held_.erase(key);
  return values;
}

}  // namespace resbm
