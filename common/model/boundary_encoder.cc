#include "common/model/boundary_encoder.h"

#include <torch/torch.h>

namespace resbm {

BoundaryEncoderImpl::BoundaryEncoderImpl(int64_t d_model, double norm_eps,
                                         const CompressionOptions& options)
    : kind_(options.kind), k_(options.WireWidth(d_model)) {
  if (kind_ == CompressionKind::kResbm || kind_ == CompressionKind::kBottleneck) {
    if (options.encoder_norm) norm_ = register_module("norm", RmsNorm(d_model, norm_eps));
    e_ = register_module("E", BoundaryMap(d_model, k_, options.halves_hidden));
  }
}

torch::Tensor BoundaryEncoderImpl::forward(const torch::Tensor& h) {
  auto e = [&] { return e_->forward(norm_ ? norm_->forward(h) : h); };  // (B, T, k)
  switch (kind_) {
    case CompressionKind::kNone:
      return h;  // (B, T, d)
    case CompressionKind::kResbm:
      return h.slice(-1, 0, k_) + e();  // (B, T, k)
    case CompressionKind::kBottleneck:
      return e();  // (B, T, k)
    case CompressionKind::kTruncate:
      return h.slice(-1, 0, k_);  // (B, T, k)
  }
  return h;
}

}  // namespace resbm
