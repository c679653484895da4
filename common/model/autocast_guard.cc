#include "common/model/autocast_guard.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace resbm {
namespace {

// LibTorch 2.4 replaced the per-backend autocast calls (set_cpu_enabled, set_enabled for
// CUDA, ...) with calls that take the device type, and deprecated the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool IsEnabled(c10::DeviceType device) { return at::autocast::is_autocast_enabled(device); }
void SetEnabled(c10::DeviceType device, bool on) { at::autocast::set_autocast_enabled(device, on); }
c10::ScalarType GetDtype(c10::DeviceType device) { return at::autocast::get_autocast_dtype(device); }
void SetDtype(c10::DeviceType device, c10::ScalarType dtype) {
  at::autocast::set_autocast_dtype(device, dtype);
}
#else
bool IsEnabled(c10::DeviceType device) {
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled()
                                         : at::autocast::is_cpu_enabled();
}
void SetEnabled(c10::DeviceType device, bool on) {
  if (device == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
}
c10::ScalarType GetDtype(c10::DeviceType device) {
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                         : at::autocast::get_autocast_cpu_dtype();
}
void SetDtype(c10::DeviceType device, c10::ScalarType dtype) {
  if (device == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
}
#endif

}  // namespace

AutocastGuard::AutocastGuard(c10::DeviceType device, ComputeDtype dtype) {
  if (dtype == ComputeDtype::kFp32) return;
  active_ = true;
  device_ = device;
  previous_enabled_ = IsEnabled(device);
  previous_dtype_ = GetDtype(device);
  SetDtype(device, c10::ScalarType::BFloat16);
  SetEnabled(device, true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // Leaving the outermost region drops the bf16 copies of the weights autocast cached (the
  // autograd graph keeps what backward needs), as torch.autocast does.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetEnabled(device_, previous_enabled_);
  SetDtype(device_, previous_dtype_);
}

bool AutocastGuard::Enabled(c10::DeviceType device) { return IsEnabled(device); }

}  // namespace resbm
