#include "common/modelio/model_source.h"

#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/config/job_config.h"
#include "common/model/fixed_token_table.h"
#include "common/modelio/checkpoint_manifest_file.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

constexpr char kSafetensorsName[] = "model.safetensors";
constexpr char kParamPrefix[] = "param.";

}  // namespace

absl::StatusOr<std::unique_ptr<ModelSource>> ModelSource::OpenModel(const std::string& path) {
  std::error_code error;
  const std::string file =
      std::filesystem::is_directory(path, error) ? absl::StrCat(path, "/", kSafetensorsName) : path;
  std::unique_ptr<ModelSource> source(new ModelSource());
  RESBM_ASSIGN_OR_RETURN(source->safetensors_, SafetensorsFile::Open(file));
  source->description_ = absl::StrCat("exported model ", file);
  for (const SafetensorsEntry& entry : source->safetensors_->entries()) {
    source->shapes_.push_back({entry.name, entry.shape});
  }
  const auto& metadata = source->safetensors_->metadata();
  int64_t step = 0;
  if (auto it = metadata.find("resbm.step");
      it != metadata.end() && absl::SimpleAtoi(it->second, &step)) {
    source->step_ = step;
  }
  if (auto it = metadata.find("resbm.layers_per_stage"); it != metadata.end()) {
    std::vector<int64_t> sizes;
    for (absl::string_view part : absl::StrSplit(it->second, ',')) {
      int64_t size = 0;
      if (!absl::SimpleAtoi(part, &size)) {
        return absl::DataLossError(absl::StrCat(file, ": metadata resbm.layers_per_stage '",
                                                it->second, "'; expected numbers like 2,1,1"));
      }
      sizes.push_back(size);
    }
    source->layers_per_stage_ = std::move(sizes);
  }
  return source;
}

absl::StatusOr<std::unique_ptr<ModelSource>> ModelSource::OpenCheckpoint(const std::string& path) {
  std::unique_ptr<ModelSource> source(new ModelSource());
  RESBM_ASSIGN_OR_RETURN(v1::CheckpointManifest manifest, CheckpointManifestFile::Read(path));
  RESBM_ASSIGN_OR_RETURN(source->plan_, PlanJobStages(manifest.config()));
  source->description_ = absl::StrCat("checkpoint ", path);
  for (NamedShape& shape :
       ModelTensorNames::ExportShapes(ToModelOptions(manifest.config()),
                                      ToCompressionOptions(manifest.config()), source->plan_)) {
    source->shapes_.push_back(std::move(shape));
  }
  source->step_ = static_cast<int64_t>(manifest.step());
  source->layers_per_stage_.emplace();
  for (const StageSpec& spec : source->plan_) source->layers_per_stage_->push_back(spec.num_layers);
  source->manifest_ = std::move(manifest);
  return source;
}

absl::StatusOr<std::unique_ptr<ModelSource>> ModelSource::Open(const v1::InitConfig& init) {
  switch (init.source_case()) {
    case v1::InitConfig::kFromModel:
      return OpenModel(init.from_model());
    case v1::InitConfig::kFromCheckpoint:
      return OpenCheckpoint(init.from_checkpoint());
    case v1::InitConfig::kFromJob:
      return absl::FailedPreconditionError(
          absl::StrCat("init.from_job: '", init.from_job(),
                       "' is resolved by a coordinator at submission; use init.from_checkpoint "
                       "with the job's final checkpoint manifest here"));
    case v1::InitConfig::SOURCE_NOT_SET:
      break;
  }
  return absl::FailedPreconditionError("init: no source; nothing to open");
}

absl::StatusOr<RawTensor> ModelSource::Read(const std::string& name) {
  if (safetensors_.has_value()) return safetensors_->Read(name);
  return ReadFromCheckpoint(name);
}

absl::StatusOr<RawTensor> ModelSource::ReadFromCheckpoint(const std::string& name) {
  const NamedShape* expected = nullptr;
  for (const NamedShape& shape : shapes_) {
    if (shape.name == name) expected = &shape;
  }
  if (expected == nullptr) {
    return absl::NotFoundError(absl::StrCat(description_, ": no tensor '", name, "'"));
  }
  RESBM_ASSIGN_OR_RETURN(const int64_t stage, ModelTensorNames::OwningStage(plan_, name));
  if (name == ModelTensorNames::FixedTableName(stage)) {
    // Not in any checkpoint: a pure function of the stage and the model's shape.
    const ModelOptions model = ToModelOptions(manifest_->config());
    std::vector<float> values =
        FixedTokenTable::Values(stage, model.vocab_size, model.d_model, model.init_std);
    RawTensor table{name, TensorDtype::kFloat32, expected->shape,
                    std::string(values.size() * sizeof(float), '\0')};
    std::memcpy(table.data.data(), values.data(), table.data.size());  // Little-endian F32.
    return table;
  }
  const std::string& file = manifest_->stage_files(static_cast<int>(stage));
  if (cached_stage_ != stage) {
    cached_stage_ = -1;
    RESBM_ASSIGN_OR_RETURN(cached_, CheckpointCodec::ReadFile(file));
    if (cached_.stage != stage || cached_.step != static_cast<int64_t>(manifest_->step())) {
      return absl::DataLossError(absl::StrCat(
          file, ": checkpoint of stage ", cached_.stage, " after step ", cached_.step,
          "; the manifest ", "expects stage ", stage, " after step ", manifest_->step()));
    }
    cached_stage_ = stage;
  }
  for (const RawTensor& tensor : cached_.tensors) {
    absl::string_view local = tensor.name;
    if (!absl::ConsumePrefix(&local, kParamPrefix)) continue;
    auto exported = ModelTensorNames::ExportName(plan_[stage], local);
    if (!exported.ok() || *exported != name) continue;
    if (tensor.shape != expected->shape || tensor.dtype != TensorDtype::kFloat32) {
      return absl::DataLossError(absl::StrCat(file, ": ", tensor.name, " is ",
                                              SafetensorsDtypeName(tensor.dtype), " ",
                                              ShapeString(tensor.shape), "; the job's config ",
                                              "expects F32 ", ShapeString(expected->shape)));
    }
    RawTensor out = tensor;
    out.name = name;
    return out;
  }
  return absl::DataLossError(
      absl::StrCat(file, ": stage ", stage, " checkpoint has no parameter for '", name, "'"));
}

absl::Status ModelSource::CheckHolds(const std::vector<NamedShape>& expected,
                                     const std::string& field) const {
  std::map<std::string, const NamedShape*> have;
  for (const NamedShape& shape : shapes_) have[shape.name] = &shape;
  for (const NamedShape& want : expected) {
    auto it = have.find(want.name);
    if (it == have.end()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": tensor ", want.name, " ",
                                                     ShapeString(want.shape), " of this model is ",
                                                     "not in ", description_));
    }
    if (it->second->shape != want.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": tensor ", want.name, " has shape ", ShapeString(it->second->shape), " in ",
          description_, " and ", ShapeString(want.shape),
          " in this model; expected the same shape (model sizes as the source was trained)"));
    }
    have.erase(it);
  }
  if (!have.empty()) {
    const NamedShape& extra = *have.begin()->second;
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": tensor ", extra.name, " ", ShapeString(extra.shape), " of ",
                     description_, " has no place in this model (", have.size(),
                     " such tensors); expected the same ", "layers, widths and boundaries"));
  }
  return absl::OkStatus();
}

}  // namespace resbm
