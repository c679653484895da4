// AdamW: Adam with decoupled weight decay and bias correction, for the embedding, the LM head
// and norm gains (or every parameter in the AdamW baseline). Holds non-owning references to
// the parameters and owns their moment estimates. Not thread-safe.
#ifndef RESBM_COMMON_MODEL_ADAMW_H_
#define RESBM_COMMON_MODEL_ADAMW_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/model/model_options.h"
#include "common/model/named_tensors.h"

namespace resbm {

class AdamW {
 public:
  AdamW(NamedTensors params, const AdamWOptions& options);

  // One update with learning rate options.lr * lr_scale.
  void Step(double lr_scale);

  // "<param>.exp_avg", "<param>.exp_avg_sq" and "adamw.step", for checkpoints.
  NamedTensors State() const;
  absl::Status LoadState(const NamedTensors& state);

 private:
  NamedTensors params_;
  std::vector<at::Tensor> exp_avg_;
  std::vector<at::Tensor> exp_avg_sq_;
  int64_t step_ = 0;
  AdamWOptions options_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_ADAMW_H_
