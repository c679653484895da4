#include "common/model/muon.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/model/optimizer_state.h"

namespace resbm {

Muon::Muon(NamedTensors params, const MuonOptions& options)
    : params_(std::move(params)), options_(options) {
  for (const auto& [name, p] : params_) {
    momentum_.push_back(torch::zeros_like(p));
  }
}

at::Tensor Muon::Orthogonalize(const at::Tensor& g, int steps) {
  constexpr double a = 3.4445, b = -4.7750, c = 2.0315;
  const bool transpose = g.size(0) > g.size(1);
  auto x = g.to(torch::kFloat32);  // (rows, cols)
  x = x / (x.norm() + 1e-7);
  if (transpose) x = x.t();  // (m, n), m <= n
  for (int i = 0; i < steps; ++i) {
    auto gram = torch::matmul(x, x.t());                   // (m, m)
    auto poly = b * gram + c * torch::matmul(gram, gram);  // (m, m)
    x = a * x + torch::matmul(poly, x);                    // (m, n)
  }
  if (transpose) x = x.t();  // (rows, cols)
  return x.contiguous();
}

void Muon::Step(double lr_scale) {
  torch::NoGradGuard no_grad;
  const double lr = options_.lr * lr_scale;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].second;
    if (!p.grad().defined()) continue;
    const auto& grad = p.grad();  // (rows, cols)
    auto& buf = momentum_[i];
    buf.mul_(options_.momentum).add_(grad);
    auto update = options_.nesterov ? grad + options_.momentum * buf : buf;
    auto ortho = Orthogonalize(update, options_.ns_steps);
    const double rows = static_cast<double>(p.size(0)), cols = static_cast<double>(p.size(1));
    const double scale = std::sqrt(std::max(1.0, rows / cols));
    if (options_.weight_decay != 0.0) p.mul_(1.0 - lr * options_.weight_decay);
    p.add_(ortho.to(p.dtype()), -lr * scale);
  }
}

NamedTensors Muon::State() const {
  NamedTensors state;
  for (size_t i = 0; i < params_.size(); ++i) {
    state.emplace_back(absl::StrCat(params_[i].first, ".momentum"), momentum_[i]);
  }
  return state;
}

absl::Status Muon::LoadState(const NamedTensors& state) {
  for (size_t i = 0; i < params_.size(); ++i) {
    auto status =
        RestoreStateTensor(state, absl::StrCat(params_[i].first, ".momentum"), momentum_[i]);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace resbm
