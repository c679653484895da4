// TokenChannel: what a stage after the first adds to its decoded residual from the token ids
// of the microbatch (received from the coordinator, never over the boundary link):
//   h' = pad_d(z) + D(z) + T_s[tokens].
// learned: T_s is a V x d table ("table.weight"); factorized: a V x m table times an m x d
// projection ("table.weight", "proj.weight"); fixed: FixedTokenTable's signs, a buffer that
// is neither trained nor checkpointed. A torch module; not thread-safe.
#ifndef RESBM_COMMON_MODEL_TOKEN_CHANNEL_H_
#define RESBM_COMMON_MODEL_TOKEN_CHANNEL_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

#include "common/model/model_options.h"

namespace resbm {

class TokenChannelImpl : public torch::nn::Module {
 public:
  // `stage` (>= 1) selects the fixed table's values.
  TokenChannelImpl(const ModelOptions& model, const CompressionOptions& compression, int64_t stage);

  // tokens: (B, T) int64 -> (B, T, d)
  torch::Tensor forward(const torch::Tensor& tokens);

 private:
  torch::nn::Embedding table_{nullptr};
  torch::nn::Linear proj_{nullptr};
  torch::Tensor fixed_;  // (V, d) buffer
};
TORCH_MODULE(TokenChannel);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_TOKEN_CHANNEL_H_
