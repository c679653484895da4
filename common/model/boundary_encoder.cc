#include "common/model/boundary_encoder.h"

#include <torch/torch.h>

namespace resbm {

BoundaryEncoderImpl::BoundaryEncoderImpl(int64_t d_model, const CompressionOptions& options)
    : kind_(options.kind), k_(options.WireWidth(d_model)) {
  if (kind_ == CompressionKind::kResbm || kind_ == CompressionKind::kBottleneck) {
    e_ = register_module("E", torch::nn::Linear(torch::nn::LinearOptions(d_model, k_).bias(false)));
    torch::NoGradGuard no_grad;
    e_->weight.zero_();  // Stage::InitParameters sets the configured init.
  }
}

torch::Tensor BoundaryEncoderImpl::forward(const torch::Tensor& h) {
  switch (kind_) {
    case CompressionKind::kNone:
      return h;  // (B, T, d)
    case CompressionKind::kResbm:
      return h.slice(-1, 0, k_) + e_->forward(h);  // (B, T, k)
    case CompressionKind::kBottleneck:
      return e_->forward(h);  // (B, T, k)
    case CompressionKind::kTruncate:
      return h.slice(-1, 0, k_);  // (B, T, k)
  }
  return h;
}

}  // namespace resbm
