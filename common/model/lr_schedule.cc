#include "common/model/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace resbm {

double LrMultiplier(const LrScheduleOptions& options, int64_t step) {
  if (step < options.warmup_steps) {
    return static_cast<double>(step + 1) / static_cast<double>(options.warmup_steps);
  }
  const int64_t decay_steps = std::max<int64_t>(1, options.total_steps - options.warmup_steps - 1);
  const double progress =
      std::clamp(static_cast<double>(step - options.warmup_steps) / decay_steps, 0.0, 1.0);
  const double floor = options.min_lr_ratio;
  switch (options.decay) {
    case LrDecay::kCosine:
      return floor + (1.0 - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
    case LrDecay::kLinear:
      return floor + (1.0 - floor) * (1.0 - progress);
    case LrDecay::kConstant:
      return 1.0;
  }
  return 1.0;
}

}  // namespace resbm
