// ModelExporter: stitches a complete checkpoint (one file per stage, named by a
// CheckpointManifest) into an export directory: model.safetensors (every tensor under its
// export name, fp32, in ModelTensorNames order; metadata resbm.job_id and resbm.step) and
// config.json (Hugging Face Llama fields, plus a "resbm" object with the stage split, the
// boundaries and the whole job config). No LibTorch. Stateless; thread-safe for distinct
// output directories.
#ifndef RESBM_COMMON_MODELIO_MODEL_EXPORTER_H_
#define RESBM_COMMON_MODELIO_MODEL_EXPORTER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "resbm/v1/checkpoint.pb.h"
#include "resbm/v1/config.pb.h"

namespace resbm {

struct ExportResult {
  std::string dir;
  int64_t step = 0;
  int64_t tensors = 0;
  int64_t parameters = 0;                              // Elements over every tensor.
  std::vector<std::pair<std::string, int64_t>> files;  // (name, bytes), model file first.
};

class ModelExporter {
 public:
  static constexpr char kModelFile[] = "model.safetensors";
  static constexpr char kConfigFile[] = "config.json";

  // `manifest_path`: a checkpoint manifest (or its directory). Creates `out_dir`. Refuses a
  // checkpoint whose files disagree with the manifest (DataLoss naming the file).
  static absl::StatusOr<ExportResult> Export(const std::string& manifest_path,
                                             const std::string& out_dir);

  // The config.json of an export of `config` (defaults applied) after `step` steps.
  static std::string ConfigJson(const v1::JobConfig& config, const std::string& job_id,
                                int64_t step);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODELIO_MODEL_EXPORTER_H_
