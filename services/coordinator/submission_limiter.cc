#include "services/coordinator/submission_limiter.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace resbm {

SubmissionLimiter::SubmissionLimiter(int64_t per_minute, std::function<absl::Time()> clock)
    : per_minute_(per_minute), clock_(std::move(clock)) {}

absl::Status SubmissionLimiter::Admit(const std::string& user) {
  if (per_minute_ <= 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_();  // Under the lock, so each user's times stay in order.
  std::deque<absl::Time>& times = recent_[user];
  while (!times.empty() && now - times.front() >= absl::Minutes(1)) times.pop_front();
  if (static_cast<int64_t>(times.size()) >= per_minute_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("submissions: ", times.size(), " in the last minute",
                     user.empty() ? "" : absl::StrCat(" by '", user, "'"), "; expected at most ",
                     per_minute_, " (resbm-coordinator --max-submits-per-minute); retry in ",
                     absl::FormatDuration(
                         absl::Ceil(absl::Minutes(1) - (now - times.front()), absl::Seconds(1)))));
  }
  times.push_back(now);
  return absl::OkStatus();
}

}  // namespace resbm
