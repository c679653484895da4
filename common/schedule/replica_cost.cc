#include "common/schedule/replica_cost.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace resbm {

absl::StatusOr<double> RingAllReduceSeconds(int64_t replicas, double bytes, double bytes_per_second,
                                            double latency_seconds) {
  if (replicas < 1) {
    return absl::InvalidArgumentError(absl::StrCat("replicas: ", replicas, "; expected >= 1"));
  }
  for (const auto& [name, value] : {std::pair<const char*, double>{"bytes", bytes},
                                    {"bytes_per_second", bytes_per_second},
                                    {"latency_seconds", latency_seconds}}) {
    if (!std::isfinite(value) || value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": ", value, "; expected a finite number >= 0"));
    }
  }
  const double r = static_cast<double>(replicas);
  const double transfer = bytes_per_second > 0 ? bytes / (r * bytes_per_second) : 0.0;
  return 2.0 * (r - 1.0) * (latency_seconds + transfer);
}

absl::StatusOr<double> StepWithAllReduceSeconds(const ScheduleTimeline& timeline,
                                                const std::vector<double>& all_reduce_seconds) {
  if (all_reduce_seconds.size() != timeline.end_seconds.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("all_reduce_seconds: ", all_reduce_seconds.size(), " stages; expected ",
                     timeline.end_seconds.size()));
  }
  double step = timeline.makespan_seconds;
  for (size_t s = 0; s < all_reduce_seconds.size(); ++s) {
    step = std::max(step, timeline.end_seconds[s] + all_reduce_seconds[s]);
  }
  return step;
}

}  // namespace resbm
