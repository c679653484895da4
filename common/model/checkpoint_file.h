// CheckpointFile: reads and writes one stage's checkpoint (its parameters and optimizer
// state as named LibTorch tensors, plus the stage index and step), atomically: temp file,
// fsync, rename, fsync of the directory. The bytes are CheckpointCodec's (its header states
// the format). Stateless; thread-safe for distinct paths.
#ifndef RESBM_COMMON_MODEL_CHECKPOINT_FILE_H_
#define RESBM_COMMON_MODEL_CHECKPOINT_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/named_tensors.h"

namespace resbm {

struct CheckpointContents {
  int64_t stage = 0;
  // Number of optimizer steps applied before this checkpoint.
  int64_t step = 0;
  NamedTensors tensors;  // CPU copies after Read.
};

class CheckpointFile {
 public:
  // Tensors may live on any device; they are copied to the host. Supported dtypes: float32,
  // float64, int64, bfloat16.
  static absl::Status Write(const std::string& path, const CheckpointContents& contents);

  // Validates magic, version, every size (before allocating) and the checksum.
  static absl::StatusOr<CheckpointContents> Read(const std::string& path);

  // The same bytes in memory (a stage's state streamed to a new replica); `source` names
  // them in errors.
  static absl::StatusOr<std::string> Encode(const CheckpointContents& contents);
  static absl::StatusOr<CheckpointContents> Decode(const std::string& bytes,
                                                   const std::string& source);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_CHECKPOINT_FILE_H_
