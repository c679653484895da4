// Whole-file helpers for the model files (checkpoints, exports, manifests): an atomic write
// (temporary file, fsync, rename, fsync of the directory) and a bounded read. Stateless;
// thread-safe for distinct paths. No LibTorch, no protobuf.
#ifndef RESBM_COMMON_BASE_FILE_IO_H_
#define RESBM_COMMON_BASE_FILE_IO_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace resbm {

// Writes `bytes` to `path` so that a reader sees either the old file or all of the new one,
// also across a crash. Internal (naming the path and errno) on failure.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes);

// The whole file. NotFound when it cannot be opened; FailedPrecondition when it is not a
// regular file or is larger than `max_bytes` (checked before reading).
absl::StatusOr<std::string> ReadFileToString(const std::string& path, uint64_t max_bytes);

}  // namespace resbm

#endif  // RESBM_COMMON_BASE_FILE_IO_H_
