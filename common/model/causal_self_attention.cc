#include "common/model/causal_self_attention.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>

namespace resbm {

namespace {
torch::nn::Linear NoBiasLinear(int64_t in, int64_t out) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
}
}  // namespace

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const ModelOptions& options)
    : n_heads_(options.n_heads), head_dim_(options.d_model / options.n_heads) {
  const int64_t d = options.d_model;
  wq_ = register_module("wq", NoBiasLinear(d, d));
  wk_ = register_module("wk", NoBiasLinear(d, d));
  wv_ = register_module("wv", NoBiasLinear(d, d));
  wo_ = register_module("wo", NoBiasLinear(d, d));
  rotary_ =
      register_module("rotary", RotaryEmbedding(head_dim_, options.seq_len, options.rope_theta));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t batch = x.size(0), seq = x.size(1), d = x.size(2);
  auto split_heads = [&](const torch::Tensor& t) {
    return t.view({batch, seq, n_heads_, head_dim_}).transpose(1, 2);  // (B, H, T, hd)
  };
  auto q = rotary_->forward(split_heads(wq_->forward(x)));  // (B, H, T, hd)
  auto k = rotary_->forward(split_heads(wk_->forward(x)));  // (B, H, T, hd)
  auto v = split_heads(wv_->forward(x));                    // (B, H, T, hd)
#if TORCH_VERSION_MAJOR >= 2
  // LibTorch 2 has fused attention (flash or memory-efficient kernels on CUDA): the (T, T)
  // scores are never materialised. Same scale (1 / sqrt(hd)) and causal mask as below.
  auto y = at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                            /*is_causal=*/true);  // (B, H, T, hd)
#else
  auto scores = torch::matmul(q, k.transpose(-2, -1)) /
                std::sqrt(static_cast<double>(head_dim_));  // (B, H, T, T)
  auto future =
      torch::ones({seq, seq}, torch::TensorOptions().dtype(torch::kBool).device(x.device()))
          .triu(1);  // (T, T)
  scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  auto attn = torch::softmax(scores, /*dim=*/-1);            // (B, H, T, T)
  auto y = torch::matmul(attn, v);                           // (B, H, T, hd)
#endif
  y = y.transpose(1, 2).contiguous().view({batch, seq, d});  // (B, T, d)
  return wo_->forward(y);                                    // (B, T, d)
}

torch::Tensor CausalSelfAttentionImpl::ForwardCached(const torch::Tensor& x, int64_t position,
                                                     torch::Tensor* keys, torch::Tensor* values) {
  const int64_t batch = x.size(0), seq = x.size(1), d = x.size(2);
  auto split_heads = [&](const torch::Tensor& t) {
    return t.view({batch, seq, n_heads_, head_dim_}).transpose(1, 2);  // (B, H, t, hd)
  };
  auto q = rotary_->forward(split_heads(wq_->forward(x)), position);      // (B, H, t, hd)
  auto k = rotary_->forward(split_heads(wk_->forward(x)), position);      // (B, H, t, hd)
  auto v = split_heads(wv_->forward(x));                                  // (B, H, t, hd)
  *keys = keys->defined() ? torch::cat({*keys, k}, /*dim=*/2) : k;        // (B, H, P+t, hd)
  *values = values->defined() ? torch::cat({*values, v}, /*dim=*/2) : v;  // (B, H, P+t, hd)
  auto scores = torch::matmul(q, keys->transpose(-2, -1)) /
                std::sqrt(static_cast<double>(head_dim_));  // (B, H, t, P+t)
  // New token i sits at position + i: keys beyond it are its future.
  auto future = torch::ones({seq, position + seq},
                            torch::TensorOptions().dtype(torch::kBool).device(x.device()))
                    .triu(position + 1);  // (t, P+t)
  scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  auto y = torch::matmul(torch::softmax(scores, /*dim=*/-1), *values);  // (B, H, t, hd)
  y = y.transpose(1, 2).contiguous().view({batch, seq, d});             // (B, t, d)
  return wo_->forward(y);                                               // (B, t, d)
}

}  // namespace resbm
