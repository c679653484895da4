// WireTensor: a boundary tensor as it travels (shape, wire dtype, raw little-endian payload),
// and the size arithmetic the transport checks frames against before allocating anything.
// No LibTorch: the transport validates frames with this header alone. Value type;
// thread-compatible.
#ifndef RESBM_COMMON_WIRE_WIRE_TENSOR_H_
#define RESBM_COMMON_WIRE_WIRE_TENSOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_options.h"

namespace resbm {

// Shape (..., k). For int8 the payload is N fp32 scales (N = product of all but the last
// dim, one per token) followed by N * k int8 values; otherwise N * k values of the dtype.
struct WireTensor {
  WireDtype dtype = WireDtype::kFp32;
  std::vector<int64_t> shape;
  std::string payload;
};

// Bytes per value, not counting int8's per-token scale.
int64_t WireBytesPerValue(WireDtype dtype);

// Payload size in bytes for a shape and dtype, or InvalidArgument for an empty shape, a
// dimension < 1, or a size past `max_bytes` (checked without overflow).
absl::StatusOr<int64_t> WirePayloadBytes(const std::vector<int64_t>& shape, WireDtype dtype,
                                         int64_t max_bytes = int64_t{1} << 40);

// How many values of `wire` are NaN or Inf (for int8: how many per-token scales are), read
// from the payload bits on the host without decoding it: what a receiver checks before it
// uploads a tensor to its device. InvalidArgument if the payload does not match the shape.
absl::StatusOr<int64_t> CountNonFiniteValues(const WireTensor& wire);

}  // namespace resbm

#endif  // RESBM_COMMON_WIRE_WIRE_TENSOR_H_
