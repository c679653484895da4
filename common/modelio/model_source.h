// ModelSource: a trained model's tensors by export name (ModelTensorNames), read from an
// exported model (a directory with model.safetensors, or the file itself) or from a complete
// checkpoint (a CheckpointManifest and its stage files, whatever their stage split). What a
// fine-tune starts from, what export stitches, and what the coordinator checks a submission
// against, without LibTorch. Opening reads only headers and the manifest; Read reads one
// tensor (a checkpoint's stage file is decoded once and kept until another is needed).
// Not thread-safe.
#ifndef RESBM_COMMON_MODELIO_MODEL_SOURCE_H_
#define RESBM_COMMON_MODELIO_MODEL_SOURCE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/checkpoint_codec.h"
#include "common/model/model_tensor_names.h"
#include "common/model/raw_tensor.h"
#include "common/modelio/safetensors_file.h"
#include "resbm/v1/checkpoint.pb.h"
#include "resbm/v1/config.pb.h"

namespace resbm {

class ModelSource {
 public:
  // A directory holding model.safetensors, or a .safetensors file. NotFound / DataLoss
  // naming the file.
  static absl::StatusOr<std::unique_ptr<ModelSource>> OpenModel(const std::string& path);
  // A checkpoint manifest (or a directory holding manifest.json); the stage files are opened
  // when read.
  static absl::StatusOr<std::unique_ptr<ModelSource>> OpenCheckpoint(const std::string& path);
  // init.from_model or init.from_checkpoint; FailedPrecondition for an unresolved from_job or
  // no source.
  static absl::StatusOr<std::unique_ptr<ModelSource>> Open(const v1::InitConfig& init);

  // Every tensor the source holds, in its order, with its shape.
  const std::vector<NamedShape>& shapes() const { return shapes_; }
  // "exported model PATH" or "checkpoint PATH", for messages.
  const std::string& description() const { return description_; }
  // Steps the weights were trained for, where the source records it.
  std::optional<int64_t> step() const { return step_; }
  // Blocks per stage of the model the source was trained as, where it records it: where
  // its boundaries sit.
  const std::optional<std::vector<int64_t>>& layers_per_stage() const { return layers_per_stage_; }
  // Set for a checkpoint source.
  const std::optional<v1::CheckpointManifest>& manifest() const { return manifest_; }

  // One tensor. NotFound for a name the source lacks; DataLoss when a file disagrees with
  // what its header or manifest promised.
  absl::StatusOr<RawTensor> Read(const std::string& name);

  // OK when the source holds exactly `expected` (every name, each shape); else
  // InvalidArgument "<field>: tensor NAME has shape A in <source> and B in this model" (or
  // is missing on one side).
  absl::Status CheckHolds(const std::vector<NamedShape>& expected, const std::string& field) const;

 private:
  ModelSource() = default;
  absl::StatusOr<RawTensor> ReadFromCheckpoint(const std::string& name);

  std::string description_;
  std::vector<NamedShape> shapes_;
  std::optional<int64_t> step_;
  std::optional<std::vector<int64_t>> layers_per_stage_;
  std::optional<SafetensorsFile> safetensors_;
  std::optional<v1::CheckpointManifest> manifest_;
  std::vector<StageSpec> plan_;  // The checkpoint's stage split.
  int64_t cached_stage_ = -1;    // The decoded stage file below.
  CheckpointData cached_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODELIO_MODEL_SOURCE_H_
