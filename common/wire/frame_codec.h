// FrameCodec: turns a WireTensor into a TensorFrame for the stream and back, refusing any
// frame that does not match what the receiver expects (version, job, step, microbatch, kind,
// dtype, shape, size limits, checksum) before a tensor is allocated. Stateless; thread-safe.
#ifndef RESBM_COMMON_WIRE_FRAME_CODEC_H_
#define RESBM_COMMON_WIRE_FRAME_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/wire/wire_tensor.h"
#include "resbm/v1/tensor_frame.pb.h"

namespace resbm {

struct FrameHeader {
  std::string job_id;
  int64_t step = 0;
  int64_t microbatch = 0;
  v1::FrameKind kind = v1::FRAME_KIND_ACTIVATION;
};

// What the receiver knows from its stage assignment about the next frame.
struct FrameExpectation {
  std::string job_id;
  int64_t step = 0;
  int64_t num_microbatches = 1;
  v1::FrameKind kind = v1::FRAME_KIND_ACTIVATION;
  WireDtype dtype = WireDtype::kBf16;
  // The exact (B, T, k) the assignment implies; T may be shorter than the context only if
  // `allow_shorter_sequence`.
  std::vector<int64_t> shape;
  bool allow_shorter_sequence = false;
  // Hard cap on a payload regardless of shape (256 MiB by default).
  int64_t max_payload_bytes = int64_t{256} << 20;
};

class FrameCodec {
 public:
  static constexpr uint32_t kFormatVersion = 1;

  static v1::TensorFrame Encode(const FrameHeader& header, WireTensor tensor);

  // Errors: FailedPrecondition for a frame of another job, step or direction (a plan
  // mismatch); InvalidArgument for a malformed frame (version, microbatch, dtype, shape, size);
  // DataLoss for a checksum mismatch. Messages name the field, the value and the expectation.
  static absl::StatusOr<WireTensor> Decode(v1::TensorFrame frame, const FrameExpectation& expected);
};

}  // namespace resbm

#endif  // RESBM_COMMON_WIRE_FRAME_CODEC_H_
