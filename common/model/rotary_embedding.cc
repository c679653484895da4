#include "common/model/rotary_embedding.h"

#include <torch/torch.h>

namespace resbm {

RotaryEmbeddingImpl::RotaryEmbeddingImpl(int64_t head_dim, int64_t max_seq_len, double theta) {
  const int64_t half = head_dim / 2;
  // Tables in float64 then cast, so they match across devices bit for bit.
  auto exponents = torch::arange(half, torch::kFloat64) * 2.0 / static_cast<double>(head_dim);
  auto inv_freq = torch::pow(theta, -exponents);                 // (hd/2)
  auto positions = torch::arange(max_seq_len, torch::kFloat64);  // (T_max)
  auto angles = torch::outer(positions, inv_freq);               // (T_max, hd/2)
  auto full = torch::cat({angles, angles}, /*dim=*/-1);          // (T_max, hd)
  cos_ = register_buffer("cos", full.cos().to(torch::kFloat32));
  sin_ = register_buffer("sin", full.sin().to(torch::kFloat32));
}

torch::Tensor RotaryEmbeddingImpl::forward(const torch::Tensor& x, int64_t offset) {
  const int64_t seq = x.size(2);
  const int64_t half = x.size(3) / 2;
  auto cos = cos_.slice(0, offset, offset + seq).to(x.dtype());  // (T, hd)
  auto sin = sin_.slice(0, offset, offset + seq).to(x.dtype());  // (T, hd)
  auto x1 = x.slice(-1, 0, half);                    // (B, H, T, hd/2)
  auto x2 = x.slice(-1, half);                       // (B, H, T, hd/2)
  auto rotated = torch::cat({-x2, x1}, /*dim=*/-1);  // (B, H, T, hd)
  return x * cos + rotated * sin;                    // (B, H, T, hd)
}

}  // namespace resbm
