// TransformerBlock: one pre-norm Llama block, x + attn(norm(x)) then x + mlp(norm(x)).
// A torch module; not thread-safe.
#ifndef RESBM_COMMON_MODEL_TRANSFORMER_BLOCK_H_
#define RESBM_COMMON_MODEL_TRANSFORMER_BLOCK_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "common/model/causal_self_attention.h"
#include "common/model/model_options.h"
#include "common/model/rms_norm.h"
#include "common/model/swiglu_mlp.h"

namespace resbm {

class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(const ModelOptions& options);

  // x: (B, T, d) -> (B, T, d)
  torch::Tensor forward(const torch::Tensor& x);
  // The same for tokens at [position, position + t) with the attention's key/value cache
  // (see CausalSelfAttention::ForwardCached). x: (B, t, d) -> (B, t, d)
  torch::Tensor ForwardCached(const torch::Tensor& x, int64_t position, torch::Tensor* keys,
                              torch::Tensor* values);

 private:
  RmsNorm attn_norm_{nullptr}, mlp_norm_{nullptr};
  CausalSelfAttention attn_{nullptr};
  SwiGluMlp mlp_{nullptr};
};
TORCH_MODULE(TransformerBlock);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_TRANSFORMER_BLOCK_H_
