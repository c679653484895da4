#include "common/model/boundary_map.h"

#include <torch/torch.h>

namespace resbm {

BoundaryMapImpl::BoundaryMapImpl(int64_t in, int64_t out, int64_t hidden) {
  if (hidden == 0) {
    weight_ = register_parameter("weight", torch::zeros({out, in}));
    return;
  }
  fc1_ =
      register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(in, hidden).bias(false)));
  fc2_ =
      register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(hidden, out).bias(false)));
  torch::NoGradGuard no_grad;
  fc1_->weight.zero_();
  fc2_->weight.zero_();
}

torch::Tensor BoundaryMapImpl::forward(const torch::Tensor& x) {
  if (weight_.defined()) return torch::nn::functional::linear(x, weight_);  // (B, T, out)
  return fc2_->forward(torch::silu(fc1_->forward(x)));                      // (B, T, out)
}

}  // namespace resbm
