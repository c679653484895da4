#include "common/modelio/exported_model.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/base/file_io.h"
#include "common/config/job_config.h"
#include "common/model/model_tensor_names.h"
#include "common/modelio/model_exporter.h"
#include "common/modelio/model_source.h"
#include "common/status/status_macros.h"

namespace resbm {

absl::StatusOr<ExportedModel> ExportedModel::Open(const std::string& dir) {
  const std::string config_path = absl::StrCat(dir, "/", ModelExporter::kConfigFile);
  RESBM_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(config_path, 16 << 20));
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": ", what));
  };
  if (json.is_discarded() || !json.is_object()) return bad("not a JSON object");
  const auto resbm = json.find("resbm");
  if (resbm == json.end() || !resbm->is_object()) {
    return bad("no \"resbm\" object; expected the config.json of resbmctl export");
  }
  const auto job_config = resbm->find("job_config");
  if (job_config == resbm->end() || !job_config->is_object()) {
    return bad("resbm.job_config: missing; expected the job's config");
  }
  ExportedModel model;
  absl::StatusOr<v1::JobConfig> config = ParseJobConfigJson(job_config->dump());
  if (!config.ok()) return bad(absl::StrCat("resbm.job_config: ", config.status().message()));
  model.config_ = *std::move(config);
  if (auto it = resbm->find("job_id"); it != resbm->end() && it->is_string()) {
    model.job_id_ = it->get<std::string>();
  }
  if (auto it = resbm->find("step"); it != resbm->end() && it->is_number_unsigned()) {
    model.step_ = static_cast<int64_t>(it->get<uint64_t>());
  }
  model.safetensors_path_ = absl::StrCat(dir, "/", ModelExporter::kModelFile);
  RESBM_ASSIGN_OR_RETURN(auto source, ModelSource::OpenModel(model.safetensors_path_));
  const auto& c = model.config_;
  RESBM_ASSIGN_OR_RETURN(auto plan, PlanJobStages(c));
  RESBM_RETURN_IF_ERROR(source->CheckHolds(
      ModelTensorNames::ExportShapes(ToModelOptions(c), ToCompressionOptions(c), plan),
      config_path));
  return model;
}

}  // namespace resbm
