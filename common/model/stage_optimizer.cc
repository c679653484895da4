#include "common/model/stage_optimizer.h"

#include <torch/torch.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/model/lr_schedule.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

NamedTensors WithPrefix(const NamedTensors& state, const std::string& prefix) {
  NamedTensors out;
  for (const auto& [name, t] : state) out.emplace_back(prefix + name, t);
  return out;
}

NamedTensors StripPrefix(const NamedTensors& state, const std::string& prefix) {
  NamedTensors out;
  for (const auto& [name, t] : state) {
    if (absl::StartsWith(name, prefix)) out.emplace_back(name.substr(prefix.size()), t);
  }
  return out;
}

}  // namespace

bool StageOptimizer::IsHiddenMatrix(const std::string& name, const at::Tensor& param) {
  // Embedding tables (the input's and the token channel's) and the head take AdamW.
  return param.dim() == 2 && !absl::StartsWith(name, "embed.") &&
         !absl::StartsWith(name, "head.") && !absl::StartsWith(name, "token_channel.table.");
}

StageOptimizer::StageOptimizer(const NamedTensors& params, const OptimizerOptions& options)
    : params_(params), options_(options) {
  NamedTensors muon_group, halves_group, adamw_group;
  for (const auto& [name, p] : params) {
    if (options.use_muon && IsHiddenMatrix(name, p)) {
      const bool half =
          absl::StartsWith(name, "encoder.E.") || absl::StartsWith(name, "decoder.D.");
      (half && options.halves_lr_scale != 1.0 ? halves_group : muon_group).emplace_back(name, p);
    } else {
      adamw_group.emplace_back(name, p);
    }
  }
  if (!muon_group.empty()) muon_ = std::make_unique<Muon>(muon_group, options.muon);
  if (!halves_group.empty()) {
    MuonOptions halves = options.muon;
    halves.lr *= options.halves_lr_scale;
    halves_ = std::make_unique<Muon>(halves_group, halves);
  }
  if (!adamw_group.empty()) adamw_ = std::make_unique<AdamW>(adamw_group, options.adamw);
  if (options.outer.steps > 0) outer_ = std::make_unique<OuterOptimizer>(params, options.outer);
}

double StageOptimizer::GradSquaredNorm() const {
  // Summed on the device, read back once: one host sync per step, not one per parameter.
  at::Tensor total;
  for (const auto& [name, p] : params_) {
    if (!p.grad().defined()) continue;
    auto squared = p.grad().to(torch::kFloat64).pow(2).sum();
    total = total.defined() ? total + squared : squared;
  }
  return total.defined() ? total.item<double>() : 0.0;
}

std::vector<float> StageOptimizer::FlatGradients() const {
  std::vector<at::Tensor> pieces;
  for (const auto& [name, p] : params_) {
    pieces.push_back(p.grad().defined()
                         ? p.grad().reshape({-1}).to(torch::kFloat32)
                         : torch::zeros({p.numel()}, p.options().dtype(torch::kFloat32)));
  }
  if (pieces.empty()) return {};
  const at::Tensor flat = torch::cat(pieces).to(torch::kCPU).contiguous();  // (N,)
  const float* data = flat.data_ptr<float>();
  return std::vector<float>(data, data + flat.numel());
}

absl::Status StageOptimizer::SetFlatGradients(const std::vector<float>& values) {
  int64_t total = 0;
  for (const auto& [name, p] : params_) total += p.numel();
  if (static_cast<int64_t>(values.size()) != total) {
    return absl::InvalidArgumentError(
        absl::StrCat("gradients: ", values.size(), " values; expected ", total));
  }
  torch::NoGradGuard no_grad;
  const at::Tensor flat = torch::from_blob(const_cast<float*>(values.data()), {total},
                                           torch::kFloat32);  // (N,), not owned.
  int64_t offset = 0;
  for (auto& [name, p] : params_) {
    const at::Tensor slice = flat.narrow(0, offset, p.numel()).view(p.sizes());
    offset += p.numel();
    // Every replica ends with a gradient for every parameter (zeros where none flowed), so
    // their optimizers treat each parameter alike whatever their own history; a copy, never
    // a view of `values`.
    if (p.grad().defined()) {
      p.mutable_grad().copy_(slice);
    } else {
      p.mutable_grad() = slice.to(p.options(), /*non_blocking=*/false, /*copy=*/true);
    }
  }
  return absl::OkStatus();
}

void StageOptimizer::Step(int64_t step, double clip_factor) {
  {
    torch::NoGradGuard no_grad;
    if (clip_factor != 1.0) {
      for (auto& [name, p] : params_) {
        if (p.grad().defined()) p.mutable_grad().mul_(clip_factor);
      }
    }
  }
  const double lr_scale = LrMultiplier(options_.schedule, step);
  if (muon_) muon_->Step(lr_scale);
  if (halves_) halves_->Step(lr_scale);
  if (adamw_) adamw_->Step(lr_scale);
  ZeroGrad();
}

void StageOptimizer::ZeroGrad() {
  for (auto& [name, p] : params_) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
}

NamedTensors StageOptimizer::State() const {
  NamedTensors state;
  // One "muon." namespace for both Muon groups: a state tensor is named after its parameter,
  // so a checkpoint reads back whatever learning rate the halves have.
  for (const auto* muon : {muon_.get(), halves_.get()}) {
    if (muon == nullptr) continue;
    for (auto& entry : WithPrefix(muon->State(), "muon.")) state.push_back(entry);
  }
  if (adamw_) {
    for (auto& entry : WithPrefix(adamw_->State(), "adamw.")) state.push_back(entry);
  }
  if (outer_) {
    for (auto& entry : WithPrefix(outer_->State(), "outer.")) state.push_back(entry);
  }
  return state;
}

absl::Status StageOptimizer::LoadState(const NamedTensors& state) {
  for (auto* muon : {muon_.get(), halves_.get()}) {
    if (muon == nullptr) continue;
    auto status = muon->LoadState(StripPrefix(state, "muon."));
    if (!status.ok()) return status;
  }
  if (adamw_) {
    auto status = adamw_->LoadState(StripPrefix(state, "adamw."));
    if (!status.ok()) return status;
  }
  outer_loaded_ = false;
  if (!outer_) return absl::OkStatus();
  const NamedTensors outer = StripPrefix(state, "outer.");
  if (outer.empty()) return absl::OkStatus();
  RESBM_RETURN_IF_ERROR(outer_->LoadState(outer));
  outer_loaded_ = true;
  return absl::OkStatus();
}

void StageOptimizer::ParametersLoaded() {
  if (outer_ && !outer_loaded_) outer_->Reanchor();
}

}  // namespace resbm
