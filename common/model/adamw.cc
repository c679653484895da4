#include "common/model/adamw.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/model/optimizer_state.h"

namespace resbm {

AdamW::AdamW(NamedTensors params, const AdamWOptions& options)
    : params_(std::move(params)), options_(options) {
  for (const auto& [name, p] : params_) {
    exp_avg_.push_back(torch::zeros_like(p));
    exp_avg_sq_.push_back(torch::zeros_like(p));
  }
}

void AdamW::Step(double lr_scale) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double lr = options_.lr * lr_scale;
  const double correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
  const double correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].second;
    if (!p.grad().defined()) continue;
    const auto& grad = p.grad();
    exp_avg_[i].mul_(options_.beta1).add_(grad, 1.0 - options_.beta1);
    exp_avg_sq_[i].mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
    auto denom = (exp_avg_sq_[i] / correction2).sqrt_().add_(options_.eps);
    if (options_.weight_decay != 0.0) p.mul_(1.0 - lr * options_.weight_decay);
    p.addcdiv_(exp_avg_[i], denom, -lr / correction1);
  }
}

NamedTensors AdamW::State() const {
  NamedTensors state;
  for (size_t i = 0; i < params_.size(); ++i) {
    state.emplace_back(absl::StrCat(params_[i].first, ".exp_avg"), exp_avg_[i]);
    state.emplace_back(absl::StrCat(params_[i].first, ".exp_avg_sq"), exp_avg_sq_[i]);
  }
  state.emplace_back("adamw.step", torch::tensor({step_}, torch::kInt64));
  return state;
}

absl::Status AdamW::LoadState(const NamedTensors& state) {
  for (size_t i = 0; i < params_.size(); ++i) {
    auto status =
        RestoreStateTensor(state, absl::StrCat(params_[i].first, ".exp_avg"), exp_avg_[i]);
    if (!status.ok()) return status;
    status =
        RestoreStateTensor(state, absl::StrCat(params_[i].first, ".exp_avg_sq"), exp_avg_sq_[i]);
    if (!status.ok()) return status;
  }
  auto step = torch::zeros({1}, torch::kInt64);
  auto status = RestoreStateTensor(state, "adamw.step", step);
  if (!status.ok()) return status;
  step_ = step.item<int64_t>();
  return absl::OkStatus();
}

}  // namespace resbm
