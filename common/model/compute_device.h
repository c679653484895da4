// The device a stage computes on, from a user's string ("cpu", "cuda", "cuda:1"): parsed,
// checked against what this process can reach, and named canonically ("cuda" becomes
// "cuda:0"), so the worker refuses a device it cannot use at startup rather than at its first
// step. Also the memory a stage holds on its device, for the metrics. Stateless; thread-safe.
#ifndef RESBM_COMMON_MODEL_COMPUTE_DEVICE_H_
#define RESBM_COMMON_MODEL_COMPUTE_DEVICE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace resbm {

// `field` names the flag or option in errors ("--device"). InvalidArgument for a string
// LibTorch cannot parse or a device type other than cpu and cuda; FailedPrecondition for a
// CUDA device this process cannot see (no CUDA build, no GPU, index past the last GPU).
absl::StatusOr<std::string> ResolveComputeDevice(absl::string_view field,
                                                 absl::string_view device);

// Bytes the caching allocator holds in tensors on `device` (a resolved CUDA device; 0 before
// CUDA is initialised), or the resident memory of this process for "cpu" (a CPU stage's
// tensors live there). Never throws.
double DeviceMemoryBytes(const std::string& device);

// True where this LibTorch was built with CUDA and sees at least one GPU.
bool CudaAvailable();

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_COMPUTE_DEVICE_H_
