// WireCodec: turns a boundary tensor (z going forward, g_z going back) into the bytes that
// cross the network, and back, in one of the wire dtypes: fp32, bf16, fp16 or int8 with one
// fp32 scale per token. Used by the single-process trainer and by the transport alike, so
// both see the same rounding, on whatever device the tensor is. Stateless; thread-safe. No
// gRPC.
#ifndef RESBM_COMMON_WIRE_WIRE_CODEC_H_
#define RESBM_COMMON_WIRE_WIRE_CODEC_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_options.h"
#include "common/wire/wire_tensor.h"

namespace resbm {

class WireCodec {
 public:
  // x: (..., k) floating point, any device -> payload on the host. InvalidArgument for an
  // undefined, non-floating or zero-rank tensor; Internal if LibTorch fails.
  static absl::StatusOr<WireTensor> Encode(const at::Tensor& x, WireDtype dtype);

  // Back to an fp32 CPU tensor of wire.shape. Fails with InvalidArgument (naming the sizes)
  // when the payload does not match the shape and dtype; never allocates before checking.
  static absl::StatusOr<at::Tensor> Decode(const WireTensor& wire);

  // The payload size wire.shape and wire.dtype call for, or InvalidArgument (naming both
  // sizes) when wire.payload has another; allocates nothing.
  static absl::StatusOr<int64_t> CheckPayload(const WireTensor& wire);

  // The two halves of Encode and Decode, computed where the tensor lives (what WireTransfer
  // runs on a GPU). EncodeBytes: x (..., k) -> the payload as a 1-D uint8 tensor on x's
  // device, laid out as WireTensor::payload. DecodeBytes: such a tensor (any device) -> fp32
  // (shape) on its device; InvalidArgument when its length does not match shape and dtype.
  static absl::StatusOr<at::Tensor> EncodeBytes(const at::Tensor& x, WireDtype dtype);
  static absl::StatusOr<at::Tensor> DecodeBytes(const at::Tensor& bytes,
                                                const std::vector<int64_t>& shape, WireDtype dtype);
};

}  // namespace resbm

#endif  // RESBM_COMMON_WIRE_WIRE_CODEC_H_
