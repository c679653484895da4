#include "common/model/boundary_decoder.h"

#include <torch/torch.h>

namespace resbm {

BoundaryDecoderImpl::BoundaryDecoderImpl(int64_t d_model, const CompressionOptions& options)
    : kind_(options.kind), d_model_(d_model), k_(options.WireWidth(d_model)) {
  if (kind_ == CompressionKind::kResbm || kind_ == CompressionKind::kBottleneck) {
    d_ = register_module("D", BoundaryMap(k_, d_model, options.halves_hidden));
  }
}

torch::Tensor BoundaryDecoderImpl::forward(const torch::Tensor& z) {
  namespace F = torch::nn::functional;
  auto pad = [&] {
    return F::pad(z, F::PadFuncOptions({0, d_model_ - k_}));  // (B, T, d)
  };
  switch (kind_) {
    case CompressionKind::kNone:
      return z;  // (B, T, d)
    case CompressionKind::kResbm:
      return pad() + d_->forward(z);  // (B, T, d)
    case CompressionKind::kBottleneck:
      return d_->forward(z);  // (B, T, d)
    case CompressionKind::kTruncate:
      return pad();  // (B, T, d)
  }
  return z;
}

}  // namespace resbm
