#include "common/train/stage_initializer.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/model/model_tensor_names.h"
#include "common/model/tensor_bytes.h"
#include "common/model/torch_seam.h"
#include "common/status/status_macros.h"

namespace resbm {

absl::Status StageInitializer::CopyParameters(ModelSource& source, const StageSpec& spec,
                                              const NamedTensors& params) {
  for (const auto& [local, param] : params) {
    RESBM_ASSIGN_OR_RETURN(const std::string name, ModelTensorNames::ExportName(spec, local));
    RESBM_ASSIGN_OR_RETURN(const RawTensor raw, source.Read(name));
    const std::vector<int64_t> want(param.sizes().begin(), param.sizes().end());
    if (raw.shape != want) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", name, " has shape ", ShapeString(raw.shape), " in ",
                       source.description(), " and ", ShapeString(want), " in stage ", spec.index));
    }
    RESBM_ASSIGN_OR_RETURN(const at::Tensor value, TensorBytes::FromRaw(raw));
    RESBM_RETURN_IF_ERROR(AtTorchSeam(name, "copy", [&]() -> absl::Status {
      torch::NoGradGuard no_grad;
      at::Tensor target = param;  // Shares the parameter's storage.
      target.copy_(value.to(target.device(), target.scalar_type()));
      return absl::OkStatus();
    }));
  }
  return absl::OkStatus();
}

absl::Status StageInitializer::Apply(const v1::InitConfig& init, StageRunner* runner) {
  if (init.source_case() == v1::InitConfig::SOURCE_NOT_SET) return absl::OkStatus();
  RESBM_ASSIGN_OR_RETURN(auto source, ModelSource::Open(init));
  const StageSpec& spec = runner->spec();
  if (init.carry_optimizer_state()) {
    // The same split (ModelInitCheck): stage s's file holds exactly this stage's state.
    const auto& manifest = source->manifest();
    if (!manifest.has_value() || spec.index >= manifest->stage_files_size()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "init.carry_optimizer_state: ", source->description(), " has no stage ", spec.index));
    }
    return runner->LoadCheckpoint(manifest->stage_files(static_cast<int>(spec.index))).status();
  }
  return CopyParameters(*source, spec, runner->Parameters());
}

}  // namespace resbm
