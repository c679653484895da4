// StageCheckpointPath: where a stage's checkpoint lives in a checkpoint directory, the one
// layout the workers (which write and read them) and the coordinator (which writes the
// manifests and retires old checkpoints) share: DIR/JOB-step-STEP-stage-STAGE.ckpt. The job id
// names the file, so only letters, digits, '-' and '_' are accepted: no request can reach a
// file outside the directory. Header-only; pure.
#ifndef RESBM_COMMON_MODELIO_STAGE_CHECKPOINT_PATH_H_
#define RESBM_COMMON_MODELIO_STAGE_CHECKPOINT_PATH_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace resbm {

inline absl::StatusOr<std::string> StageCheckpointPath(const std::string& dir,
                                                       const std::string& job_id, int64_t step,
                                                       int64_t stage) {
  bool plain = !job_id.empty() && job_id.size() <= 128;
  for (char c : job_id) plain = plain && (absl::ascii_isalnum(c) || c == '-' || c == '_');
  if (!plain) {
    return absl::InvalidArgumentError(
        absl::StrCat("job_id: '", job_id,
                     "'; expected 1 to 128 letters, digits, '-' or '_' (it names the "
                     "checkpoint file)"));
  }
  if (dir.empty()) {
    return absl::FailedPreconditionError(
        "checkpoint directory: not set; expected --checkpoint-dir (the coordinator's, shared)");
  }
  return absl::StrCat(dir, "/", job_id, "-step-", step, "-stage-", stage, ".ckpt");
}

}  // namespace resbm

#endif  // RESBM_COMMON_MODELIO_STAGE_CHECKPOINT_PATH_H_
