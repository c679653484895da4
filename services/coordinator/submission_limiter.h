// SubmissionLimiter: at most N job submissions per user in any sliding minute, so one client
// (or a runaway script) cannot flood the queue and the job store. The clock is injectable for
// tests. Thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_SUBMISSION_LIMITER_H_
#define RESBM_SERVICES_COORDINATOR_SUBMISSION_LIMITER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace resbm {

class SubmissionLimiter {
 public:
  // `per_minute` 0: no limit.
  explicit SubmissionLimiter(
      int64_t per_minute, std::function<absl::Time()> clock = [] { return absl::Now(); });

  // Counts a submission by `user` ("" for an anonymous API), or ResourceExhausted naming the
  // user, the count and the limit when the last minute already holds `per_minute` of them.
  absl::Status Admit(const std::string& user);

 private:
  const int64_t per_minute_;
  const std::function<absl::Time()> clock_;
  absl::Mutex mu_;
  std::map<std::string, std::deque<absl::Time>> recent_ ABSL_GUARDED_BY(mu_);
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_SUBMISSION_LIMITER_H_
