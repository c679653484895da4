// RmsNorm: root-mean-square normalisation with a learned gain (no bias), as in Llama.
// A torch module; not thread-safe (owned by one stage executor).
#ifndef RESBM_COMMON_MODEL_RMS_NORM_H_
#define RESBM_COMMON_MODEL_RMS_NORM_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace resbm {

class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps);

  // x: (..., d) -> (..., d)
  torch::Tensor forward(const torch::Tensor& x);

  const torch::Tensor& gain() const { return gain_; }

 private:
  double eps_;
  torch::Tensor gain_;  // (d)
};
TORCH_MODULE(RmsNorm);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_RMS_NORM_H_
