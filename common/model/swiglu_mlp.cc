#include "common/model/swiglu_mlp.h"

#include <torch/torch.h>

namespace resbm {

SwiGluMlpImpl::SwiGluMlpImpl(const ModelOptions& options) {
  const int64_t d = options.d_model, f = options.mlp_hidden;
  w1_ = register_module("w1", torch::nn::Linear(torch::nn::LinearOptions(d, f).bias(false)));
  w2_ = register_module("w2", torch::nn::Linear(torch::nn::LinearOptions(f, d).bias(false)));
  w3_ = register_module("w3", torch::nn::Linear(torch::nn::LinearOptions(d, f).bias(false)));
}

torch::Tensor SwiGluMlpImpl::forward(const torch::Tensor& x) {
  auto gate = torch::silu(w1_->forward(x));  // (B, T, F)
  auto up = w3_->forward(x);                 // (B, T, F)
  return w2_->forward(gate * up);            // (B, T, d)
}

}  // namespace resbm
