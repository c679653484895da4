// ModelInitCheck: what the coordinator (at submission) and resbm-train (at start) check of a
// job that starts from a trained model (config.init): the source opens, holds exactly the
// tensors the job's model has with the same shapes, and, when the optimizer state is to be
// carried, comes from a checkpoint with the same stage split and optimizer kind. Every
// refusal is INVALID_ARGUMENT naming the field, the tensor and both shapes. Reads headers and
// the manifest only. Stateless; thread-safe.
#ifndef RESBM_COMMON_MODELIO_MODEL_INIT_CHECK_H_
#define RESBM_COMMON_MODELIO_MODEL_INIT_CHECK_H_

#include "absl/status/status.h"
#include "resbm/v1/config.pb.h"

namespace resbm {

class ModelInitCheck {
 public:
  // `config`: defaults applied and validated. OK when it has no init source. init.from_job is
  // refused (FailedPrecondition): the coordinator resolves it before calling this.
  static absl::Status Check(const v1::JobConfig& config);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODELIO_MODEL_INIT_CHECK_H_
