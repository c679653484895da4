// WireCodec: turns a boundary tensor (z going forward, g_z going back) into the bytes that
// cross the network, and back, in one of the wire dtypes: fp32, bf16, fp16 or int8 with one
// fp32 scale per token. Used by the single-process trainer and by the transport alike, so
// both see the same rounding. Stateless; thread-safe. No gRPC.
#ifndef RESBM_COMMON_MODEL_WIRE_CODEC_H_
#define RESBM_COMMON_MODEL_WIRE_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/model/model_options.h"

namespace resbm {

// A tensor as it travels: shape (..., k), dtype, and the raw little-endian payload. For int8
// the payload is N fp32 scales (N = product of all but the last dim) then N * k int8 values.
struct WireTensor {
  WireDtype dtype = WireDtype::kFp32;
  std::vector<int64_t> shape;
  std::string payload;
};

class WireCodec {
 public:
  // x: (..., k) floating point, any device -> payload on the host.
  static WireTensor Encode(const at::Tensor& x, WireDtype dtype);

  // Back to an fp32 CPU tensor of wire.shape. Fails with InvalidArgument (naming the sizes)
  // when the payload does not match the shape and dtype; never allocates before checking.
  static absl::StatusOr<at::Tensor> Decode(const WireTensor& wire);

  // Payload size in bytes for a shape and dtype, or an error for an invalid shape (negative or
  // zero-rank dims, or a product past `max_bytes`).
  static absl::StatusOr<int64_t> PayloadBytes(const std::vector<int64_t>& shape, WireDtype dtype,
                                              int64_t max_bytes = int64_t{1} << 40);

  // Bytes per value, not counting int8's per-token scale.
  static int64_t BytesPerValue(WireDtype dtype);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_WIRE_CODEC_H_
