// BoundaryEncoder: the sending half of a pipeline boundary, at the end of stage s. It maps the
// residual stream h (width d) to what crosses the network, z (width k = d / r):
//   none: z = h;  resbm: z = h[..., :k] + E(h);  bottleneck: z = E(h);  truncate: z = h[..., :k].
// Owns E (a BoundaryMap d -> k) where the kind has one; with encoder_norm, E reads
// RMSNorm(h) (gain "norm.weight") while the identity path still takes h[..., :k].
// A torch module; not thread-safe.
#ifndef RESBM_COMMON_MODEL_BOUNDARY_ENCODER_H_
#define RESBM_COMMON_MODEL_BOUNDARY_ENCODER_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "common/model/boundary_map.h"
#include "common/model/model_options.h"
#include "common/model/rms_norm.h"

namespace resbm {

class BoundaryEncoderImpl : public torch::nn::Module {
 public:
  BoundaryEncoderImpl(int64_t d_model, double norm_eps, const CompressionOptions& options);

  // h: (B, T, d) -> z: (B, T, k)
  torch::Tensor forward(const torch::Tensor& h);

  int64_t wire_width() const { return k_; }
  // E's weight (k, d), or an undefined tensor for kinds without E or a two-layer E.
  torch::Tensor weight() const { return e_ ? e_->weight() : torch::Tensor(); }

 private:
  CompressionKind kind_;
  int64_t k_;
  RmsNorm norm_{nullptr};
  BoundaryMap e_{nullptr};
};
TORCH_MODULE(BoundaryEncoder);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_BOUNDARY_ENCODER_H_
