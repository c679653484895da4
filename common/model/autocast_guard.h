// AutocastGuard: runs the code in its scope under LibTorch's autocast at the stage's compute
// dtype (bf16 matrix products, fp32 reductions), for one device type, and restores the
// thread's previous autocast state when it ends. A no-op for fp32. Autocast state is per
// thread: construct it on the thread that runs the forward. Not copyable.
#ifndef RESBM_COMMON_MODEL_AUTOCAST_GUARD_H_
#define RESBM_COMMON_MODEL_AUTOCAST_GUARD_H_

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include "common/model/model_options.h"

namespace resbm {

class AutocastGuard {
 public:
  // `device`: kCPU or kCUDA (the device of the tensors the scope computes on).
  AutocastGuard(c10::DeviceType device, ComputeDtype dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

  // Whether autocast is on for `device` on this thread right now.
  static bool Enabled(c10::DeviceType device);

 private:
  bool active_ = false;
  c10::DeviceType device_ = c10::DeviceType::CPU;
  bool previous_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::Float;
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_AUTOCAST_GUARD_H_
