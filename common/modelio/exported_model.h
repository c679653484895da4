// ExportedModel: an export directory opened for use: its config.json read back into the job
// config it was trained with (model shape, stage split, boundaries, wire dtype) and its
// model.safetensors checked to hold exactly the tensors that config calls for. What
// resbm-generate and resbm-probe load. No LibTorch. A value; thread-compatible.
#ifndef RESBM_COMMON_MODELIO_EXPORTED_MODEL_H_
#define RESBM_COMMON_MODELIO_EXPORTED_MODEL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "resbm/v1/config.pb.h"

namespace resbm {

class ExportedModel {
 public:
  // `dir`: what resbmctl export wrote. NotFound for a missing file, InvalidArgument or
  // DataLoss (naming the file and field) for a malformed or mismatched one.
  static absl::StatusOr<ExportedModel> Open(const std::string& dir);

  const v1::JobConfig& config() const { return config_; }
  const std::string& job_id() const { return job_id_; }
  int64_t step() const { return step_; }
  const std::string& safetensors_path() const { return safetensors_path_; }

 private:
  v1::JobConfig config_;
  std::string job_id_;
  int64_t step_ = 0;
  std::string safetensors_path_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODELIO_EXPORTED_MODEL_H_
