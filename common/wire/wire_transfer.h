// WireTransfer: moves boundary tensors between a stage's device and the host payloads the
// transport carries. On a CUDA device a tensor is encoded on the GPU (cast or quantised, its
// NaN/Inf counted in the same pass), then copied into pinned host memory on a copy stream of
// its own that waits only for the work that produced it: the copy overlaps the compute that
// follows and the executor never blocks on it. Received payloads go up the same way and the
// compute stream waits for them on the device, not on the host. On the CPU both directions
// are plain memory copies and a Pending is ready at once.
// StartEncode and Upload order work on the calling thread's current stream: call them from
// the thread that owns the device. A Pending may be finished on any thread. Not copyable.
#ifndef RESBM_COMMON_WIRE_WIRE_TRANSFER_H_
#define RESBM_COMMON_WIRE_WIRE_TRANSFER_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/Stream.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model/model_options.h"
#include "common/wire/wire_tensor.h"

namespace resbm {

class WireTransfer {
 public:
  // `device`: a device string ResolveComputeDevice accepted ("cpu", "cuda:1").
  static absl::StatusOr<std::unique_ptr<WireTransfer>> Create(const std::string& device);
  WireTransfer(const WireTransfer&) = delete;
  WireTransfer& operator=(const WireTransfer&) = delete;

  // An encoded tensor on its way to the host. Movable; holds the device buffer until the
  // copy is known to be done.
  class Pending {
   public:
    Pending(Pending&&) noexcept;
    Pending& operator=(Pending&&) noexcept;
    ~Pending();

    // Waits for the copy (on CUDA: blocks on the copy stream, which holds only boundary
    // copies, so at most the few queued after this one are waited for too), then returns the
    // payload; `non_finite` gets how many of the tensor's values were NaN or Inf. Consumes
    // the Pending.
    absl::StatusOr<WireTensor> Finish(int64_t* non_finite);

    const std::vector<int64_t>& shape() const { return shape_; }

   private:
    friend class WireTransfer;
    Pending() = default;

    WireDtype dtype_ = WireDtype::kFp32;
    std::vector<int64_t> shape_;
    at::Tensor device_bytes_;  // (payload + 8) uint8: the payload, then the int64 count.
    at::Tensor host_bytes_;    // The same bytes in (pinned) host memory once copied.
    std::optional<c10::Stream> copy_stream_;  // Where the copy runs; unset on the CPU.
  };

  // Encodes x (..., k), on the transfer's device, for the wire and starts its copy to the
  // host. InvalidArgument for a tensor WireCodec cannot encode or on another device.
  absl::StatusOr<Pending> StartEncode(const at::Tensor& x, WireDtype dtype);

  // A received payload as an fp32 tensor of wire.shape on the device, ready in the order of
  // the current stream (its upload runs on the copy stream). InvalidArgument when the payload
  // does not match its shape and dtype.
  absl::StatusOr<at::Tensor> Upload(const WireTensor& wire);

  const c10::Device& device() const { return device_; }

 private:
  WireTransfer(c10::Device device, std::optional<c10::Stream> copy_stream);

  c10::Device device_;
  std::optional<c10::Stream> copy_stream_;  // Set on CUDA only.
};

}  // namespace resbm

#endif  // RESBM_COMMON_WIRE_WIRE_TRANSFER_H_
