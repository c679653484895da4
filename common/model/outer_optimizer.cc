#include "common/model/outer_optimizer.h"

#include <torch/torch.h>

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "common/wire/wire_codec.h"

namespace resbm {

OuterOptimizer::OuterOptimizer(const NamedTensors& params, const OuterOptions& options)
    : params_(params), options_(options) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, p] : params_) {
    anchor_.push_back(p.detach().to(torch::kFloat32).clone());
    momentum_.push_back(torch::zeros_like(anchor_.back()));
  }
}

int64_t OuterOptimizer::Values() const {
  int64_t n = 0;
  for (const auto& [name, p] : params_) n += p.numel();
  return n;
}

at::Tensor OuterOptimizer::FlatAnchorMinusParams() const {
  torch::NoGradGuard no_grad;
  const int64_t n = Values();
  const int64_t rows = (n + kRowValues - 1) / kRowValues;
  at::Tensor flat = torch::zeros({rows * kRowValues}, torch::kFloat32);
  int64_t at = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i].second;
    flat.narrow(0, at, p.numel())
        .copy_((anchor_[i] - p.detach().to(torch::kFloat32)).reshape({-1}).cpu());
    at += p.numel();
  }
  return flat;
}

absl::StatusOr<std::string> OuterOptimizer::EncodeDelta() const {
  const at::Tensor flat = FlatAnchorMinusParams();
  RESBM_ASSIGN_OR_RETURN(WireTensor wire,
                         WireCodec::Encode(flat.view({-1, kRowValues}), options_.dtype));
  return std::move(wire.payload);
}

absl::Status OuterOptimizer::Step(const std::vector<std::string>& deltas) {
  torch::NoGradGuard no_grad;
  if (deltas.empty()) return absl::InvalidArgumentError("outer step: no deltas");
  const int64_t rows = (Values() + kRowValues - 1) / kRowValues;
  at::Tensor mean = torch::zeros({rows * kRowValues}, torch::kFloat32);
  for (size_t r = 0; r < deltas.size(); ++r) {
    WireTensor wire{options_.dtype, {rows, kRowValues}, deltas[r]};
    auto decoded = WireCodec::Decode(wire);
    if (!decoded.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("outer step: the change of replica ", r, ": ", decoded.status().message()));
    }
    mean.add_(decoded->reshape({-1}));  // In replica order: the same sum on every replica.
  }
  mean.div_(static_cast<double>(deltas.size()));
  int64_t at = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i].second;
    const at::Tensor g = mean.narrow(0, at, p.numel()).view(p.sizes()).to(anchor_[i].device());
    at += p.numel();
    momentum_[i].mul_(options_.momentum).add_(g);
    anchor_[i].sub_(g + options_.momentum * momentum_[i], options_.lr);
    p.copy_(anchor_[i]);
  }
  return absl::OkStatus();
}

void OuterOptimizer::Reanchor() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    anchor_[i].copy_(params_[i].second.detach().to(torch::kFloat32));
  }
}

NamedTensors OuterOptimizer::State() const {
  NamedTensors state;
  for (size_t i = 0; i < params_.size(); ++i) {
    state.emplace_back("anchor." + params_[i].first, anchor_[i]);
    state.emplace_back("momentum." + params_[i].first, momentum_[i]);
  }
  return state;
}

absl::Status OuterOptimizer::LoadState(const NamedTensors& state) {
  torch::NoGradGuard no_grad;
  std::map<std::string, at::Tensor> by_name(state.begin(), state.end());
  std::vector<std::pair<at::Tensor*, at::Tensor>> copies;
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto [prefix, own] : {std::pair<const char*, at::Tensor*>{"anchor.", &anchor_[i]},
                               {"momentum.", &momentum_[i]}}) {
      const std::string name = prefix + params_[i].first;
      auto it = by_name.find(name);
      if (it == by_name.end() || !it->second.sizes().equals(own->sizes())) {
        return absl::FailedPreconditionError(absl::StrCat(
            "optimizer state ", name, it == by_name.end() ? " missing" : " has another shape"));
      }
      copies.emplace_back(own, it->second);
    }
  }
  for (auto& [own, loaded] : copies) own->copy_(loaded.to(torch::kFloat32));
  return absl::OkStatus();
}

}  // namespace resbm
