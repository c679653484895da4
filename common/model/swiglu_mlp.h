// SwiGluMlp: the gated MLP of Llama, w2(silu(w1 x) * w3 x), no biases. A torch module; not
// thread-safe.
#ifndef RESBM_COMMON_MODEL_SWIGLU_MLP_H_
#define RESBM_COMMON_MODEL_SWIGLU_MLP_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "common/model/model_options.h"

namespace resbm {

class SwiGluMlpImpl : public torch::nn::Module {
 public:
  explicit SwiGluMlpImpl(const ModelOptions& options);

  // x: (B, T, d) -> (B, T, d)
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear w1_{nullptr}, w2_{nullptr}, w3_{nullptr};
};
TORCH_MODULE(SwiGluMlp);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_SWIGLU_MLP_H_
