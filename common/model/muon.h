// Muon: momentum SGD whose update is orthogonalised by a quintic Newton-Schulz iteration, for
// 2-D hidden matrices (DESIGN.md section 2). Holds non-owning references to the parameters
// (tensors share storage with the module) and owns one momentum buffer each. Not thread-safe.
#ifndef RESBM_COMMON_MODEL_MUON_H_
#define RESBM_COMMON_MODEL_MUON_H_

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "common/model/model_options.h"
#include "common/model/named_tensors.h"

namespace resbm {

class Muon {
 public:
  // Every parameter must be 2-D.
  Muon(NamedTensors params, const MuonOptions& options);

  // Approximates U V^T of g = U S V^T: `steps` iterations of X <- aX + (bA + cA^2)X with
  // A = X X^T and (a, b, c) = (3.4445, -4.7750, 2.0315), on g / ||g||_F, working on the
  // transpose when rows > cols. g: (rows, cols) -> (rows, cols), fp32.
  static at::Tensor Orthogonalize(const at::Tensor& g, int steps);

  // One update with learning rate options.lr * lr_scale: buf = mu buf + g; u = g + mu buf
  // (Nesterov) or buf; p <- p (1 - lr wd) - lr sqrt(max(1, rows/cols)) Orthogonalize(u).
  void Step(double lr_scale);

  // Momentum buffers as "<param>.momentum", for checkpoints.
  NamedTensors State() const;
  absl::Status LoadState(const NamedTensors& state);

 private:
  NamedTensors params_;
  std::vector<at::Tensor> momentum_;
  MuonOptions options_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_MUON_H_
