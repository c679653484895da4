#include "common/model/rms_norm.h"

#include <torch/torch.h>

namespace resbm {

RmsNormImpl::RmsNormImpl(int64_t dim, double eps) : eps_(eps) {
  gain_ = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  auto inv_rms = torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps_);  // (..., 1)
  return x * inv_rms * gain_;                                               // (..., d)
}

}  // namespace resbm
