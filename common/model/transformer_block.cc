#include "common/model/transformer_block.h"

#include <torch/torch.h>

namespace resbm {

TransformerBlockImpl::TransformerBlockImpl(const ModelOptions& options) {
  attn_norm_ = register_module("attn_norm", RmsNorm(options.d_model, options.norm_eps));
  attn_ = register_module("attn", CausalSelfAttention(options));
  mlp_norm_ = register_module("mlp_norm", RmsNorm(options.d_model, options.norm_eps));
  mlp_ = register_module("mlp", SwiGluMlp(options));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x) {
  auto h = x + attn_->forward(attn_norm_->forward(x));  // (B, T, d)
  return h + mlp_->forward(mlp_norm_->forward(h));      // (B, T, d)
}

torch::Tensor TransformerBlockImpl::ForwardCached(const torch::Tensor& x, int64_t position,
                                                  torch::Tensor* keys, torch::Tensor* values) {
  auto h = x + attn_->ForwardCached(attn_norm_->forward(x), position, keys, values);  // (B, t, d)
  return h + mlp_->forward(mlp_norm_->forward(h));                                    // (B, t, d)
}

}  // namespace resbm
