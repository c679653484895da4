// ModelTensorNames: the names and shapes of a whole model's tensors as an export holds them:
// Hugging Face Llama names with global layer indices ("model.layers.3.self_attn.q_proj.weight")
// and, for the ResBM boundary halves, names of their own ("model.boundaries.1.encoder.weight":
// boundary s joins stage s and stage s + 1; ".encoder.fc1.weight" and ".encoder.norm.weight"
// for two-layer or normed halves) and the token channels ("model.token_channels.2.table.weight",
// "...proj.weight"; a fixed table is "model.token_channels.2.fixed_table", not a weight).
// Maps a stage's local parameter names (what StageImpl registers: "layer3.attn.wq.weight",
// "encoder.E.weight") onto them. Pure functions; thread-safe. No LibTorch.
#ifndef RESBM_COMMON_MODEL_MODEL_TENSOR_NAMES_H_
#define RESBM_COMMON_MODEL_MODEL_TENSOR_NAMES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/model_options.h"
#include "common/model/stage_plan.h"

namespace resbm {

struct NamedShape {
  std::string name;
  std::vector<int64_t> shape;
};

class ModelTensorNames {
 public:
  // The export name of parameter `local_name` of stage `spec`; InvalidArgument for a name no
  // stage registers.
  static absl::StatusOr<std::string> ExportName(const StageSpec& spec,
                                                absl::string_view local_name);

  // The index of the stage of `plan` that holds export tensor `name`; InvalidArgument for a
  // name that is not one of the model's.
  static absl::StatusOr<int64_t> OwningStage(const std::vector<StageSpec>& plan,
                                             absl::string_view name);

  // Every tensor of the model `plan` splits, in file order (embedding, blocks in layer order,
  // boundary halves in boundary order, token channels in stage order, final norm, head),
  // with its shape.
  static std::vector<NamedShape> ExportShapes(const ModelOptions& model,
                                              const CompressionOptions& compression,
                                              const std::vector<StageSpec>& plan);

  // The name of stage `stage`'s fixed token table (TOKEN_CHANNEL_FIXED): exported, though no
  // stage holds it as a parameter.
  static std::string FixedTableName(int64_t stage);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_MODEL_TENSOR_NAMES_H_
