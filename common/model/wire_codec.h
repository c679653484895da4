// WireCodec: turns a boundary tensor (z going forward, g_z going back) into the bytes that
// cross the network, and back, in one of the wire dtypes: fp32, bf16, fp16 or int8 with one
// fp32 scale per token. Used by the single-process trainer and by the transport alike, so
// both see the same rounding. Stateless; thread-safe. No gRPC.
#ifndef RESBM_COMMON_MODEL_WIRE_CODEC_H_
#define RESBM_COMMON_MODEL_WIRE_CODEC_H_

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/model/model_options.h"
#include "common/model/wire_tensor.h"

namespace resbm {

class WireCodec {
 public:
  // x: (..., k) floating point, any device -> payload on the host. InvalidArgument for an
  // undefined, non-floating or zero-rank tensor; Internal if LibTorch fails.
  static absl::StatusOr<WireTensor> Encode(const at::Tensor& x, WireDtype dtype);

  // Back to an fp32 CPU tensor of wire.shape. Fails with InvalidArgument (naming the sizes)
  // when the payload does not match the shape and dtype; never allocates before checking.
  static absl::StatusOr<at::Tensor> Decode(const WireTensor& wire);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_WIRE_CODEC_H_
