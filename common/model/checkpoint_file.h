// CheckpointFile: reads and writes one stage's checkpoint (its parameters and optimizer
// state as named tensors, plus the stage index and step) in a small versioned binary format,
// atomically: temp file, fsync, rename, fsync of the directory. Stateless; thread-safe for
// distinct paths.
//
// Format (little-endian): "RESBMCK1", u32 version (1), i64 stage, i64 step, u32 count; per
// tensor: u32 name length, name, u8 dtype, u32 rank, i64 dims[rank], u64 bytes, raw bytes;
// then u64 FNV-1a of everything before it.
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
  static constexpr uint32_t kVersion = 1;

  // Tensors may live on any device; they are copied to the host. Supported dtypes: float32,
  // float64, int64, bfloat16.
  static absl::Status Write(const std::string& path, const CheckpointContents& contents);

  // Validates magic, version, every size (before allocating) and the checksum.
  static absl::StatusOr<CheckpointContents> Read(const std::string& path);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_CHECKPOINT_FILE_H_
