// BoundaryMap: the learned map of a boundary half (E or D): one bias-free linear map in -> out,
// or, with a hidden width m > 0, in -> m -> out with a SiLU between. The linear map's
// parameter is "weight" (so E stays "encoder.E.weight"); the two-layer one has "fc1.weight"
// (m, in) and "fc2.weight" (out, m). A torch module; not thread-safe.
#ifndef RESBM_COMMON_MODEL_BOUNDARY_MAP_H_
#define RESBM_COMMON_MODEL_BOUNDARY_MAP_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

namespace resbm {

class BoundaryMapImpl : public torch::nn::Module {
 public:
  // Every weight starts at zero; Stage::InitParameters sets the configured init.
  BoundaryMapImpl(int64_t in, int64_t out, int64_t hidden);

  // x: (B, T, in) -> (B, T, out)
  torch::Tensor forward(const torch::Tensor& x);

  // The linear map's weight (out, in); undefined for a two-layer map.
  torch::Tensor weight() const { return weight_; }

 private:
  torch::Tensor weight_;
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(BoundaryMap);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_BOUNDARY_MAP_H_
