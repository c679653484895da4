// CausalSelfAttention: multi-head causal self-attention with rotary positions and no biases.
// Owns its four projections (wq, wk, wv, wo). A torch module; not thread-safe.
#ifndef RESBM_COMMON_MODEL_CAUSAL_SELF_ATTENTION_H_
#define RESBM_COMMON_MODEL_CAUSAL_SELF_ATTENTION_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "common/model/model_options.h"
#include "common/model/rotary_embedding.h"

namespace resbm {

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit CausalSelfAttentionImpl(const ModelOptions& options);

  // x: (B, T, d) -> (B, T, d)
  torch::Tensor forward(const torch::Tensor& x);

  // Inference with a key/value cache: x (B, t, d) holds the tokens at positions
  // [position, position + t); `keys` and `values` (B, H, position, hd), undefined when
  // position is 0, are extended with theirs. Each token attends to every cached one and to
  // the new ones up to itself: the rows of forward() for those positions. -> (B, t, d)
  torch::Tensor ForwardCached(const torch::Tensor& x, int64_t position, torch::Tensor* keys,
                              torch::Tensor* values);

 private:
  int64_t n_heads_;
  int64_t head_dim_;
  torch::nn::Linear wq_{nullptr}, wk_{nullptr}, wv_{nullptr}, wo_{nullptr};
  RotaryEmbedding rotary_{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_CAUSAL_SELF_ATTENTION_H_
