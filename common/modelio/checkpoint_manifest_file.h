// CheckpointManifestFile: reads and writes a resbm.v1.CheckpointManifest as JSON: the step,
// the job's config and one checkpoint file per stage of a complete checkpoint. Read checks
// the version, the config (defaults applied, validated) and that there is one stage file per
// stage, and resolves relative stage files against the manifest's directory. Stateless;
// thread-safe for distinct paths.
#ifndef RESBM_COMMON_MODELIO_CHECKPOINT_MANIFEST_FILE_H_
#define RESBM_COMMON_MODELIO_CHECKPOINT_MANIFEST_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "resbm/v1/checkpoint.pb.h"

namespace resbm {

class CheckpointManifestFile {
 public:
  static constexpr uint32_t kFormatVersion = 1;
  // The manifest's name inside a checkpoint directory.
  static constexpr char kFileName[] = "manifest.json";

  // `path`: a manifest, or a directory holding manifest.json. The result's stage_files are
  // absolute. NotFound, or InvalidArgument naming the field, for a bad manifest.
  static absl::StatusOr<v1::CheckpointManifest> Read(const std::string& path);
  // Atomic. InvalidArgument when the manifest would not Read back.
  static absl::Status Write(const std::string& path, const v1::CheckpointManifest& manifest);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODELIO_CHECKPOINT_MANIFEST_FILE_H_
