// NamedTensors: an ordered list of (name, tensor) pairs, the currency of parameter groups,
// optimizer state and checkpoints. A type alias; no behaviour.
#ifndef RESBM_COMMON_MODEL_NAMED_TENSORS_H_
#define RESBM_COMMON_MODEL_NAMED_TENSORS_H_

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace resbm {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_NAMED_TENSORS_H_
