// WaitFor: polls `condition` every 50 ms until it holds (true) or `timeout` passes (false).
// Header-only.
#ifndef RESBM_TESTS_TESTING_WAIT_FOR_H_
#define RESBM_TESTS_TESTING_WAIT_FOR_H_

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace resbm::testing {

inline bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return condition();
}

}  // namespace resbm::testing

#endif  // RESBM_TESTS_TESTING_WAIT_FOR_H_
