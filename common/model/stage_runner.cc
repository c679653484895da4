#include "common/model/stage_runner.h"

#include <torch/torch.h>

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/hash.h"
#include "common/model/checkpoint_file.h"
#include "common/model/compute_device.h"
#include "common/model/stage.h"
#include "common/model/stage_optimizer.h"
#include "common/model/torch_seam.h"
#include "common/status/failure_cause.h"
#include "common/status/non_finite.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

// Every LibTorch call of a stage goes through the seam, labelled with the stage index.
template <typename Fn>
auto AtSeam(int64_t stage, const char* op, Fn&& fn) -> decltype(fn()) {
  return AtTorchSeam(absl::StrCat("stage ", stage), op, std::forward<Fn>(fn));
}

std::string Shape(const at::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ","), "]");
}

// Whether ids (token ids or targets) have the input's (B, T).
bool MatchesInput(const at::Tensor& input, const at::Tensor& ids) {
  return ids.defined() && ids.dim() == 2 && ids.size(0) == input.size(0) &&
         ids.size(1) == input.size(1);
}

}  // namespace

absl::StatusOr<std::unique_ptr<StageRunner>> StageRunner::Create(
    const StageRunnerOptions& options) {
  const auto& spec = options.spec;
  if (spec.num_stages < 1 || spec.index < 0 || spec.index >= spec.num_stages ||
      spec.num_layers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("stage spec: index ", spec.index, " of ", spec.num_stages, " with ",
                     spec.num_layers, " layers; expected 0 <= index < num_stages and >= 1 layer"));
  }
  if (options.compression.ratio < 1 || options.model.d_model % options.compression.ratio != 0) {
    return absl::InvalidArgumentError(absl::StrCat("compression.ratio: ", options.compression.ratio,
                                                   " does not divide d_model ",
                                                   options.model.d_model));
  }
  StageRunnerOptions resolved = options;
  auto device_name = ResolveComputeDevice("device", options.device);
  if (!device_name.ok()) return device_name.status();
  resolved.device = *device_name;
  return AtSeam(spec.index, "create", [&]() -> absl::StatusOr<std::unique_ptr<StageRunner>> {
    torch::Device device(resolved.device);
    auto stage = std::make_shared<StageImpl>(options.model, options.compression, spec);
    stage->InitParameters(options.seed);
    stage->to(device);
    NamedTensors params;
    for (auto& item : stage->named_parameters()) {
      params.emplace_back(item.key(), item.value());
    }
    auto optimizer = std::make_unique<StageOptimizer>(params, options.optimizer);
    return std::unique_ptr<StageRunner>(
        new StageRunner(resolved, std::move(stage), std::move(optimizer)));
  });
}

StageRunner::StageRunner(const StageRunnerOptions& options, std::shared_ptr<StageImpl> stage,
                         std::unique_ptr<StageOptimizer> optimizer)
    : options_(options), stage_(std::move(stage)), optimizer_(std::move(optimizer)) {}

StageRunner::~StageRunner() = default;

absl::Status StageRunner::CheckInput(const at::Tensor& input) const {
  const auto& spec = options_.spec;
  if (!input.defined()) {
    return absl::InvalidArgumentError(absl::StrCat("stage ", spec.index, " input: undefined"));
  }
  const int64_t rank = spec.is_first() ? 2 : 3;
  if (input.dim() != rank || input.size(0) < 1 || input.size(1) < 1 ||
      input.size(1) > options_.model.seq_len ||
      (!spec.is_first() && input.size(2) != stage_->input_width())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", spec.index, " input: shape ", Shape(input), "; expected ",
        spec.is_first() ? "(B, T) token ids" : absl::StrCat("(B, T, ", stage_->input_width(), ")"),
        " with 1 <= T <= ", options_.model.seq_len));
  }
  if (spec.is_first()) {
    return CheckIds("stage 0 input", input);
  } else if (input.is_cpu() && !torch::isfinite(input).all().item<bool>()) {
    // Checked on the host only: a device-resident input was checked before its upload
    // (WireTransfer's caller), and a check here would stall the device's queue.
    return NonFiniteError(absl::StrCat("the input of stage ", spec.index));
  }
  return absl::OkStatus();
}

absl::Status StageRunner::CheckIds(const char* what, const at::Tensor& ids) const {
  if (ids.scalar_type() != torch::kInt64) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": dtype ", c10::toString(ids.scalar_type()), "; expected int64 token ids"));
  }
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= options_.model.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": token ids span [", lo, ", ", hi,
                                                   "]; expected [0, ", options_.model.vocab_size,
                                                   ")"));
  }
  return absl::OkStatus();
}

absl::Status StageRunner::CheckTargets(const at::Tensor& input, const at::Tensor& targets) const {
  if (!MatchesInput(input, targets) || targets.scalar_type() != torch::kInt64) {
    return absl::InvalidArgumentError(
        absl::StrCat("stage ", options_.spec.index,
                     " targets: ", targets.defined() ? Shape(targets) : std::string("undefined"),
                     "; expected int64 (B, T) matching the input ", Shape(input)));
  }
  return CheckIds("targets", targets);
}

bool StageRunner::uses_token_ids() const { return stage_->uses_token_ids(); }

absl::Status StageRunner::CheckTokens(const at::Tensor& input, const at::Tensor& tokens) const {
  const int64_t index = options_.spec.index;
  if (!uses_token_ids()) {
    if (!tokens.defined()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", index, " tokens: ", Shape(tokens),
        "; expected none (the stage has no token channel: compression.token_channel is ",
        "TOKEN_CHANNEL_NONE, or it is the first stage)"));
  }
  if (!MatchesInput(input, tokens)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", index, " tokens: ", tokens.defined() ? Shape(tokens) : std::string("undefined"),
        "; expected the microbatch's int64 token ids (B, T) matching the input ", Shape(input),
        " (the stage has a token channel)"));
  }
  return CheckIds(absl::StrCat("stage ", index, " tokens").c_str(), tokens);
}

absl::Status StageRunner::CheckNewMicrobatch(int64_t microbatch) const {
  if (pending_.count(microbatch) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("stage ", options_.spec.index, " microbatch ",
                                                      microbatch, ": already in flight"));
  }
  return absl::OkStatus();
}

absl::StatusOr<StageRunner::Prepared> StageRunner::PrepareInput(const at::Tensor& input,
                                                                const at::Tensor& tokens,
                                                                bool track) const {
  RESBM_RETURN_IF_ERROR(CheckInput(input));
  RESBM_RETURN_IF_ERROR(CheckTokens(input, tokens));
  torch::Device device(options_.device);
  Prepared prepared;
  if (tokens.defined()) prepared.tokens = tokens.to(device);  // (B, T)
  if (options_.spec.is_first()) {
    prepared.input = input.to(device);  // (B, T)
    return prepared;
  }
  prepared.input = input.to(device, torch::kFloat32).detach();  // (B, T, k)
  if (track) prepared.input.set_requires_grad(true);
  return prepared;
}

absl::StatusOr<at::Tensor> StageRunner::Forward(int64_t microbatch, const at::Tensor& input,
                                                const at::Tensor& tokens) {
  const auto& spec = options_.spec;
  if (spec.is_last()) {
    return absl::FailedPreconditionError(
        absl::StrCat("stage ", spec.index, " is the last stage: use ForwardLoss"));
  }
  auto status = CheckNewMicrobatch(microbatch);
  if (!status.ok()) return status;
  return AtSeam(spec.index, "forward", [&]() -> absl::StatusOr<at::Tensor> {
    RESBM_ASSIGN_OR_RETURN(Prepared prepared, PrepareInput(input, tokens, /*track=*/true));
    auto z = stage_->forward(prepared.input, prepared.tokens);  // (B, T, k)
    pending_[microbatch] = Pending{prepared.input, z};
    return z.detach();
  });
}

absl::StatusOr<double> StageRunner::ForwardLoss(int64_t microbatch, const at::Tensor& input,
                                                const at::Tensor& targets, double loss_scale,
                                                const at::Tensor& tokens) {
  const auto& spec = options_.spec;
  if (!spec.is_last()) {
    return absl::FailedPreconditionError(
        absl::StrCat("stage ", spec.index, " is not the last stage: use Forward"));
  }
  auto status = CheckNewMicrobatch(microbatch);
  if (!status.ok()) return status;
  return AtSeam(spec.index, "forward", [&]() -> absl::StatusOr<double> {
    RESBM_ASSIGN_OR_RETURN(Prepared prepared, PrepareInput(input, tokens, /*track=*/true));
    RESBM_RETURN_IF_ERROR(CheckTargets(prepared.input, targets));
    torch::Device device(options_.device);
    auto logits = stage_->forward(prepared.input, prepared.tokens);  // (B, T, V)
    auto loss = StageImpl::Loss(logits, targets.to(device));         // ()
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      return NonFiniteError(absl::StrCat("the loss of microbatch ", microbatch, " on stage ",
                                         spec.index, " is ", value));
    }
    pending_[microbatch] = Pending{prepared.input, loss * loss_scale};
    return value;
  });
}

absl::StatusOr<at::Tensor> StageRunner::Backward(int64_t microbatch,
                                                 const at::Tensor& grad_output) {
  const auto& spec = options_.spec;
  auto it = pending_.find(microbatch);
  if (it == pending_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("stage ", spec.index, " microbatch ",
                                                      microbatch, ": backward without forward"));
  }
  Pending pending = std::move(it->second);
  pending_.erase(it);
  return AtSeam(spec.index, "backward", [&]() -> absl::StatusOr<at::Tensor> {
    if (spec.is_last()) {
      pending.output.backward();
    } else {
      if (!grad_output.defined() || !grad_output.sizes().equals(pending.output.sizes())) {
        return absl::InvalidArgumentError(
            absl::StrCat("stage ", spec.index, " gradient: shape ",
                         grad_output.defined() ? Shape(grad_output) : std::string("undefined"),
                         "; expected ", Shape(pending.output)));
      }
      if (grad_output.is_cpu() && !torch::isfinite(grad_output).all().item<bool>()) {
        return NonFiniteError(absl::StrCat("the output gradient of stage ", spec.index));
      }
      pending.output.backward(
          grad_output.to(pending.output.device(), pending.output.scalar_type()));
    }
    if (spec.is_first()) return at::Tensor();
    return pending.input.grad().detach();  // (B, T, k)
  });
}

absl::StatusOr<at::Tensor> StageRunner::Evaluate(const at::Tensor& input,
                                                 const at::Tensor& tokens) {
  const auto& spec = options_.spec;
  if (spec.is_last()) {
    return absl::FailedPreconditionError(
        absl::StrCat("stage ", spec.index, " is the last stage: use EvaluateLoss"));
  }
  return AtSeam(spec.index, "evaluate", [&]() -> absl::StatusOr<at::Tensor> {
    torch::NoGradGuard no_grad;
    RESBM_ASSIGN_OR_RETURN(Prepared prepared, PrepareInput(input, tokens, /*track=*/false));
    return stage_->forward(prepared.input, prepared.tokens);  // (B, T, k)
  });
}

absl::StatusOr<double> StageRunner::EvaluateLoss(const at::Tensor& input, const at::Tensor& targets,
                                                 const at::Tensor& tokens) {
  const auto& spec = options_.spec;
  if (!spec.is_last()) {
    return absl::FailedPreconditionError(
        absl::StrCat("stage ", spec.index, " is not the last stage: use Evaluate"));
  }
  return AtSeam(spec.index, "evaluate", [&]() -> absl::StatusOr<double> {
    torch::NoGradGuard no_grad;
    RESBM_ASSIGN_OR_RETURN(Prepared prepared, PrepareInput(input, tokens, /*track=*/false));
    RESBM_RETURN_IF_ERROR(CheckTargets(prepared.input, targets));
    auto logits = stage_->forward(prepared.input, prepared.tokens);  // (B, T, V)
    return StageImpl::Loss(logits, targets.to(logits.device())).item<double>();
  });
}

absl::StatusOr<at::Tensor> StageRunner::EvaluateLogits(const at::Tensor& input,
                                                       const at::Tensor& tokens) {
  const auto& spec = options_.spec;
  if (!spec.is_last()) {
    return absl::FailedPreconditionError(
        absl::StrCat("stage ", spec.index, " is not the last stage: use Evaluate"));
  }
  return AtSeam(spec.index, "evaluate", [&]() -> absl::StatusOr<at::Tensor> {
    torch::NoGradGuard no_grad;
    RESBM_ASSIGN_OR_RETURN(Prepared prepared, PrepareInput(input, tokens, /*track=*/false));
    return stage_->forward(prepared.input, prepared.tokens).cpu();  // (B, T, V)
  });
}

NamedTensors StageRunner::Gradients() const {
  NamedTensors grads;
  for (const auto& [name, param] : Parameters()) {
    grads.emplace_back(name, param.grad().defined() ? param.grad().detach().cpu().clone()
                                                    : torch::zeros(param.sizes()));
  }
  return grads;
}

absl::StatusOr<double> StageRunner::GradSquaredNorm() const {
  return AtSeam(options_.spec.index, "grad norm",
                [&]() -> absl::StatusOr<double> { return optimizer_->GradSquaredNorm(); });
}

absl::StatusOr<std::vector<float>> StageRunner::FlatGradients() const {
  return AtSeam(
      options_.spec.index, "flatten gradients",
      [&]() -> absl::StatusOr<std::vector<float>> { return optimizer_->FlatGradients(); });
}

absl::StatusOr<uint64_t> StageRunner::ParameterChecksum() const {
  return AtSeam(options_.spec.index, "parameter checksum", [&]() -> absl::StatusOr<uint64_t> {
    uint64_t hash = kFnv1a64Seed;
    for (const auto& [name, p] : Parameters()) {
      const at::Tensor host = p.detach().to(torch::kCPU).contiguous();
      hash = Fnv1a64(host.data_ptr(), static_cast<size_t>(host.nbytes()), hash);
    }
    return hash;
  });
}

absl::Status StageRunner::SetFlatGradients(const std::vector<float>& values) {
  return AtSeam(options_.spec.index, "set gradients",
                [&]() -> absl::Status { return optimizer_->SetFlatGradients(values); });
}

absl::Status StageRunner::ApplyStep(int64_t step, double clip_factor) {
  if (!pending_.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("stage ", options_.spec.index, ": ",
                                                      pending_.size(),
                                                      " microbatches still in flight at step"));
  }
  if (!std::isfinite(clip_factor) || clip_factor < 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("clip factor: ", clip_factor, "; expected a finite value >= 0"));
  }
  return AtSeam(options_.spec.index, "optimizer step", [&]() -> absl::Status {
    optimizer_->Step(step, clip_factor);
    return absl::OkStatus();
  });
}

bool StageRunner::has_outer() const { return optimizer_->outer() != nullptr; }

absl::StatusOr<std::string> StageRunner::EncodeOuterDelta() const {
  if (!has_outer()) {
    return absl::FailedPreconditionError(
        absl::StrCat("stage ", options_.spec.index, ": no outer optimizer"));
  }
  return AtSeam(options_.spec.index, "encode outer change", [&]() -> absl::StatusOr<std::string> {
    return optimizer_->outer()->EncodeDelta();
  });
}

absl::Status StageRunner::OuterStep(const std::vector<std::string>& deltas) {
  if (!has_outer()) {
    return absl::FailedPreconditionError(
        absl::StrCat("stage ", options_.spec.index, ": no outer optimizer"));
  }
  return AtSeam(options_.spec.index, "outer step",
                [&]() -> absl::Status { return optimizer_->outer()->Step(deltas); });
}

void StageRunner::AbortStep() {
  pending_.clear();
  optimizer_->ZeroGrad();
}

NamedTensors StageRunner::Parameters() const {
  NamedTensors params;
  for (const auto& item : stage_->named_parameters()) {
    params.emplace_back(item.key(), item.value());
  }
  return params;
}

NamedTensors StageRunner::OptimizerState() const { return optimizer_->State(); }

CheckpointContents StageRunner::Contents(int64_t step) const {
  CheckpointContents contents;
  contents.stage = options_.spec.index;
  contents.step = step;
  for (auto& [name, t] : Parameters()) contents.tensors.emplace_back("param." + name, t);
  for (auto& [name, t] : OptimizerState()) contents.tensors.emplace_back("optim." + name, t);
  return contents;
}

absl::Status StageRunner::SaveCheckpoint(const std::string& path, int64_t step) const {
  return AtSeam(options_.spec.index, "save checkpoint",
                [&]() -> absl::Status { return CheckpointFile::Write(path, Contents(step)); });
}

absl::StatusOr<std::string> StageRunner::SaveState(int64_t step) const {
  return AtSeam(options_.spec.index, "save state", [&]() -> absl::StatusOr<std::string> {
    return CheckpointFile::Encode(Contents(step));
  });
}

absl::StatusOr<int64_t> StageRunner::LoadState(const std::string& bytes,
                                               const std::string& source) {
  auto contents = CheckpointFile::Decode(bytes, source);  // Checks the checksum.
  if (!contents.ok()) return contents.status();
  return LoadContents(*std::move(contents), source);
}

absl::StatusOr<int64_t> StageRunner::LoadCheckpoint(const std::string& path) {
  auto contents = CheckpointFile::Read(path);  // Checks the checksum.
  if (!contents.ok()) return contents.status();
  return LoadContents(*std::move(contents), path);
}

absl::StatusOr<int64_t> StageRunner::LoadContents(CheckpointContents contents,
                                                  const std::string& path) {
  if (contents.stage != options_.spec.index) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": checkpoint of stage ", contents.stage, "; expected ", options_.spec.index));
  }
  // All or nothing: every parameter is checked before any changes, and the optimizer state
  // (checked as it loads) is put back as it was if any of it does not fit.
  return AtSeam(options_.spec.index, "load checkpoint", [&]() -> absl::StatusOr<int64_t> {
    std::map<std::string, at::Tensor> params;
    NamedTensors optim;
    for (auto& [name, t] : contents.tensors) {
      if (name.rfind("optim.", 0) == 0) {
        optim.emplace_back(name.substr(6), t);
      } else {
        params[name] = t;
      }
    }
    const NamedTensors own = Parameters();
    if (params.size() != own.size()) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": ", params.size(), " parameters; this stage has ", own.size()));
    }
    for (const auto& [name, param] : own) {
      auto it = params.find("param." + name);
      if (it == params.end() || !it->second.sizes().equals(param.sizes()) ||
          it->second.scalar_type() != param.scalar_type()) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, ": parameter ", name,
                         it == params.end() ? " missing" : " has the wrong shape or dtype"));
      }
    }
    NamedTensors before;
    for (const auto& [name, t] : optimizer_->State()) before.emplace_back(name, t.clone());
    if (absl::Status status = optimizer_->LoadState(optim); !status.ok()) {
      (void)optimizer_->LoadState(before);  // Its own state always fits.
      return Annotate(status, absl::StrCat(path, ": "));
    }
    torch::NoGradGuard no_grad;
    for (auto& [name, param] : own) param.copy_(params["param." + name]);
    optimizer_->ParametersLoaded();
    pending_.clear();
    optimizer_->ZeroGrad();
    return contents.step;
  });
}

}  // namespace resbm
