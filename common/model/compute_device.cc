#include "common/model/compute_device.h"

#include <c10/core/Device.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <exception>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"

#if RESBM_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace resbm {

bool CudaAvailable() { return torch::cuda::is_available(); }

absl::StatusOr<std::string> ResolveComputeDevice(absl::string_view field,
                                                 absl::string_view device) {
  std::optional<c10::Device> parsed;
  try {
    parsed.emplace(std::string(device));
  } catch (const std::exception&) {
    // LibTorch's message lists every backend it knows; ours says what this system runs on.
  }
  if (!parsed.has_value() || (!parsed->is_cpu() && !parsed->is_cuda())) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", device, "'; expected cpu, cuda or cuda:N"));
  }
  if (parsed->is_cpu()) {
    if (parsed->has_index() && parsed->index() != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": '", device, "'; expected cpu (there is one CPU device)"));
    }
    return std::string("cpu");
  }
  const int64_t gpus = CudaAvailable() ? static_cast<int64_t>(torch::cuda::device_count()) : 0;
  if (gpus == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        field, ": '", device, "'; no CUDA device is available to this process (",
        RESBM_WITH_CUDA ? "this LibTorch has CUDA, but no GPU is visible"
                        : "this build's LibTorch has no CUDA",
        "); expected cpu"));
  }
  const int64_t index = parsed->has_index() ? parsed->index() : 0;
  if (index >= gpus) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": '", device, "'; this process sees ", gpus,
                     " CUDA device(s); expected cuda:0 .. cuda:", gpus - 1));
  }
  return absl::StrCat("cuda:", index);
}

double DeviceMemoryBytes(const std::string& device) {
#if RESBM_WITH_CUDA
  if (device.rfind("cuda", 0) == 0) {
    try {
      const c10::Device cuda(device);
      // Stat index 0 is the aggregate over the small and large pools.
      return static_cast<double>(c10::cuda::CUDACachingAllocator::getDeviceStats(cuda.index())
                                     .allocated_bytes[0]
                                     .current);
    } catch (const std::exception&) {
      return 0.0;  // The allocator starts with CUDA's lazy initialisation: nothing held yet.
    }
  }
#endif
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

}  // namespace resbm
