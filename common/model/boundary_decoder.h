// BoundaryDecoder: the receiving half of a pipeline boundary, at the start of stage s+1. It
// maps z (width k) back to a residual stream h' (width d):
//   none: h' = z;  resbm: h' = pad_d(z) + D(z);  bottleneck: h' = D(z);  truncate: pad_d(z),
// where pad_d appends d - k zeros. Owns D (a BoundaryMap k -> d) where the kind has one.
// A torch module; not thread-safe.
#ifndef RESBM_COMMON_MODEL_BOUNDARY_DECODER_H_
#define RESBM_COMMON_MODEL_BOUNDARY_DECODER_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "common/model/boundary_map.h"
#include "common/model/model_options.h"

namespace resbm {

class BoundaryDecoderImpl : public torch::nn::Module {
 public:
  BoundaryDecoderImpl(int64_t d_model, const CompressionOptions& options);

  // z: (B, T, k) -> h': (B, T, d)
  torch::Tensor forward(const torch::Tensor& z);

  int64_t wire_width() const { return k_; }
  // D's weight (d, k), or an undefined tensor for kinds without D or a two-layer D.
  torch::Tensor weight() const { return d_ ? d_->weight() : torch::Tensor(); }

 private:
  CompressionKind kind_;
  int64_t d_model_;
  int64_t k_;
  BoundaryMap d_{nullptr};
};
TORCH_MODULE(BoundaryDecoder);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_BOUNDARY_DECODER_H_
