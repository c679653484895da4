// RotaryEmbedding: precomputed rotary position tables (half-split "rotate_half" layout) and
// their application to queries and keys. Holds buffers only, no parameters. Not thread-safe.
#ifndef RESBM_COMMON_MODEL_ROTARY_EMBEDDING_H_
#define RESBM_COMMON_MODEL_ROTARY_EMBEDDING_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace resbm {

class RotaryEmbeddingImpl : public torch::nn::Module {
 public:
  RotaryEmbeddingImpl(int64_t head_dim, int64_t max_seq_len, double theta);

  // x: (B, H, T, hd) at positions [offset, offset + T) -> (B, H, T, hd);
  // offset + T <= max_seq_len.
  torch::Tensor forward(const torch::Tensor& x, int64_t offset = 0);

 private:
  torch::Tensor cos_;  // (T_max, hd)
  torch::Tensor sin_;  // (T_max, hd)
};
TORCH_MODULE(RotaryEmbedding);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_ROTARY_EMBEDDING_H_
