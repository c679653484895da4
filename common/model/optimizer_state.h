// Helpers shared by the optimizers to restore state tensors by name with a clear error.
// Internal to common/model. Pure functions; thread-safe.
#ifndef RESBM_COMMON_MODEL_OPTIMIZER_STATE_H_
#define RESBM_COMMON_MODEL_OPTIMIZER_STATE_H_

#include <ATen/core/Tensor.h>

#include <string>

#include "absl/status/status.h"
#include "common/model/named_tensors.h"

namespace resbm {

// Copies the entry of `state` called `name` into `target` (same shape required).
absl::Status RestoreStateTensor(const NamedTensors& state, const std::string& name,
                                at::Tensor& target);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_OPTIMIZER_STATE_H_
