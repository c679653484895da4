// StageInitializer: starts a stage from a trained model (config.init) instead of its seed:
// the stage's parameters are read by export name from an exported model or a checkpoint of
// any stage split (ModelSource) and copied in; with init.carry_optimizer_state the stage's
// own checkpoint file is restored instead (parameters and optimizer state). What a worker
// does on Assign and resbm-train at start, so both begin from the same weights. Stateless;
// thread-safe for distinct stages.
#ifndef RESBM_COMMON_TRAIN_STAGE_INITIALIZER_H_
#define RESBM_COMMON_TRAIN_STAGE_INITIALIZER_H_

#include "absl/status/status.h"
#include "common/model/named_tensors.h"
#include "common/model/stage_plan.h"
#include "common/model/stage_runner.h"
#include "common/modelio/model_source.h"
#include "resbm/v1/config.pb.h"

namespace resbm {

class StageInitializer {
 public:
  // Nothing to do without a source. `init` must have passed ModelInitCheck (from_job
  // resolved); the files are read again here, and a mismatch is still refused.
  static absl::Status Apply(const v1::InitConfig& init, StageRunner* runner);

  // Copies every parameter of stage `spec` (`params`, by local name, shared storage) from
  // `source`, converting to the parameter's dtype. InvalidArgument naming the tensor and both
  // shapes on a mismatch; NotFound for a tensor the source lacks.
  static absl::Status CopyParameters(ModelSource& source, const StageSpec& spec,
                                     const NamedTensors& params);
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRAIN_STAGE_INITIALIZER_H_
