// CheckpointCodec: the bytes of one stage's checkpoint file, without LibTorch: the stage
// index, the step and named tensors (parameters "param.<local name>", optimizer state
// "optim.<...>"). CheckpointFile converts to and from LibTorch tensors on top of it; the
// coordinator reads checkpoints with it alone to export a model. Stateless; thread-safe for
// distinct paths.
//
// Format (little-endian): "RESBMCK1", u32 version (1), i64 stage, i64 step, u32 count; per
// tensor: u32 name length, name, u8 dtype (0 f32, 1 f64, 2 i64, 3 bf16), u32 rank,
// i64 dims[rank], u64 bytes, raw bytes; then u64 FNV-1a of everything before it.
#ifndef RESBM_COMMON_MODEL_CHECKPOINT_CODEC_H_
#define RESBM_COMMON_MODEL_CHECKPOINT_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/raw_tensor.h"

namespace resbm {

struct CheckpointData {
  int64_t stage = 0;
  // Number of optimizer steps applied before this checkpoint.
  int64_t step = 0;
  std::vector<RawTensor> tensors;
};

class CheckpointCodec {
 public:
  static constexpr uint32_t kVersion = 1;
  // Largest checkpoint file ReadFile accepts.
  static constexpr uint64_t kMaxFileBytes = uint64_t{1} << 40;

  // InvalidArgument for a dtype the format cannot hold or data of the wrong size.
  static absl::StatusOr<std::string> Encode(const CheckpointData& data);
  // Validates magic, version, every size (before allocating) and the checksum; errors name
  // `path` (for messages only) and the byte where the file went wrong.
  static absl::StatusOr<CheckpointData> Decode(absl::string_view bytes, const std::string& path);

  // Encode, then an atomic write (temporary file, fsync, rename).
  static absl::Status WriteFile(const std::string& path, const CheckpointData& data);
  static absl::StatusOr<CheckpointData> ReadFile(const std::string& path);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_CHECKPOINT_CODEC_H_
