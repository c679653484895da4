#include "common/modelio/model_init_check.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/job_config.h"
#include "common/model/model_tensor_names.h"
#include "common/modelio/model_source.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

std::string FieldOf(const v1::InitConfig& init) {
  return init.has_from_model() ? "init.from_model" : "init.from_checkpoint";
}

// The optimizer state of stage s only fits stage s of the same split and optimizer.
absl::Status CheckCarry(const v1::JobConfig& config, const v1::CheckpointManifest& manifest) {
  const v1::JobConfig& parent = manifest.config();
  RESBM_ASSIGN_OR_RETURN(auto plan, PlanJobStages(config));
  RESBM_ASSIGN_OR_RETURN(auto parent_plan, PlanJobStages(parent));
  if (plan != parent_plan) {
    return absl::InvalidArgumentError(
        absl::StrCat("init.carry_optimizer_state: the checkpoint has ", parent_plan.size(),
                     " stages split as in its config and this job ", plan.size(),
                     " split otherwise; expected the same stages.num_stages and layers_per_stage"));
  }
  if (parent.optimizer().kind() != config.optimizer().kind()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "init.carry_optimizer_state: the checkpoint's optimizer is ",
        v1::OptimizerKind_Name(parent.optimizer().kind()), " and this job's ",
        v1::OptimizerKind_Name(config.optimizer().kind()), "; expected the same optimizer.kind"));
  }
  return absl::OkStatus();
}

// Boundary s of the source must sit after the same block as this job's boundary s: equal
// names and shapes alone would let a re-split job apply a boundary in another place.
absl::Status CheckBoundaryPlaces(const v1::JobConfig& config, const std::vector<StageSpec>& plan,
                                 const ModelSource& source, const std::string& field) {
  if (ToCompressionOptions(config).kind == CompressionKind::kNone) return absl::OkStatus();
  if (!source.layers_per_stage().has_value()) return absl::OkStatus();
  std::vector<int64_t> sizes;
  for (const StageSpec& spec : plan) sizes.push_back(spec.num_layers);
  if (*source.layers_per_stage() == sizes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": ", source.description(), " was trained with layers per stage [",
                   absl::StrJoin(*source.layers_per_stage(), ","), "] and this job splits them [",
                   absl::StrJoin(sizes, ","),
                   "]; expected the same split, so each boundary stays after the "
                   "same block (stages.layers_per_stage)"));
}

}  // namespace

absl::Status ModelInitCheck::Check(const v1::JobConfig& config) {
  const v1::InitConfig& init = config.init();
  if (init.source_case() == v1::InitConfig::SOURCE_NOT_SET) return absl::OkStatus();
  const std::string field = FieldOf(init);
  absl::StatusOr<std::unique_ptr<ModelSource>> source = ModelSource::Open(init);
  if (!source.ok()) {
    if (absl::IsFailedPrecondition(source.status())) return source.status();
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", source.status().message(),
        absl::IsNotFound(source.status())
            ? "; expected an export directory, a .safetensors file or a checkpoint manifest "
              "readable here"
            : ""));
  }
  RESBM_ASSIGN_OR_RETURN(auto plan, PlanJobStages(config));
  RESBM_RETURN_IF_ERROR(CheckBoundaryPlaces(config, plan, **source, field));
  RESBM_RETURN_IF_ERROR((*source)->CheckHolds(
      ModelTensorNames::ExportShapes(ToModelOptions(config), ToCompressionOptions(config), plan),
      field));
  if (const auto& manifest = (*source)->manifest(); manifest.has_value()) {
    for (int s = 0; s < manifest->stage_files_size(); ++s) {
      std::error_code error;
      if (!std::filesystem::is_regular_file(manifest->stage_files(s), error)) {
        return absl::InvalidArgumentError(absl::StrCat(field, ": stage ", s, " checkpoint '",
                                                       manifest->stage_files(s),
                                                       "' does not exist; expected a file"));
      }
    }
    if (init.carry_optimizer_state()) RESBM_RETURN_IF_ERROR(CheckCarry(config, *manifest));
  }
  return absl::OkStatus();
}

}  // namespace resbm
