// LrMultiplier: the learning-rate schedule as a pure function of the step: linear warmup to
// the peak, then cosine, linear or no decay to min_lr_ratio at the last step. Thread-safe.
#ifndef RESBM_COMMON_MODEL_LR_SCHEDULE_H_
#define RESBM_COMMON_MODEL_LR_SCHEDULE_H_

#include <cstdint>

#include "common/model/model_options.h"

namespace resbm {

// Multiplier of the peak learning rate for 0-based `step` (the step about to be taken).
// Warmup: (step + 1) / warmup_steps. Then progress p runs from 0 at the first step after
// warmup to 1 at step total_steps - 1.
double LrMultiplier(const LrScheduleOptions& options, int64_t step);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_LR_SCHEDULE_H_
